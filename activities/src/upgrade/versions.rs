//! Release versions and the pre-deploy safety gate.
//!
//! Versions are semver with optional build metadata naming the bundled app
//! version, for example `10.7.1+26.6.2`. A major bump of either part is a
//! major bump. Release notes that match a hold pattern (case-insensitive),
//! such as "manual migration", hold the upgrade too.

use std::cmp::Ordering;
use std::fmt;

/// A parsed release version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The version as written (tag name without a leading `v`).
    pub raw: String,
    /// major, minor, patch of the release.
    pub release: [u64; 3],
    /// major, minor, patch of the bundled app, from build metadata.
    pub bundled: Option<[u64; 3]>,
}

fn triple(s: &str) -> Option<[u64; 3]> {
    let mut parts = s.split('.');
    let mut out = [0u64; 3];
    for slot in &mut out {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl Version {
    /// Parses `1.2.3`, `v1.2.3` or `1.2.3+4.5.6`; anything else is None.
    pub fn parse(text: &str) -> Option<Self> {
        let raw = text.trim().strip_prefix('v').unwrap_or(text.trim());
        let (release, bundled) = match raw.split_once('+') {
            Some((r, b)) => (triple(r)?, Some(triple(b)?)),
            None => (triple(raw)?, None),
        };
        Some(Self {
            raw: raw.to_string(),
            release,
            bundled,
        })
    }

    /// Whether going from `self` to `to` changes a major number.
    pub fn is_major_bump_to(&self, to: &Version) -> bool {
        to.release[0] != self.release[0]
            || matches!((self.bundled, to.bundled), (Some(a), Some(b)) if a[0] != b[0])
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.release
            .cmp(&other.release)
            .then(self.bundled.cmp(&other.bundled))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The highest version among `tags`; tags that are not versions are ignored.
pub fn latest<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Version> {
    tags.into_iter().filter_map(Version::parse).max()
}

/// Phrases that hold an upgrade when the release notes contain them.
pub const DEFAULT_HOLD_PATTERNS: &[&str] = &[
    "manual migration",
    "manual-migration",
    "migrate manually",
    "breaking change",
];

/// Why an upgrade is held, with the passages of the release notes that
/// match a hold pattern (for a major bump too: its notes often say what
/// to migrate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// A major bump of the release or of the bundled app.
    Major(Vec<String>),
    /// The release notes call for a manual migration.
    ManualMigration(Vec<String>),
}

/// The safety gate: only non-major bumps whose notes match no hold pattern
/// go through unattended.
pub fn gate(
    from: Option<&Version>,
    to: &Version,
    notes: &str,
    patterns: &[String],
) -> Option<Hold> {
    let matches = matching(notes, patterns);
    if from.is_some_and(|f| f.is_major_bump_to(to)) {
        return Some(Hold::Major(matches));
    }
    (!matches.is_empty()).then_some(Hold::ManualMigration(matches))
}

/// The sentences of `notes` that contain a pattern (case-insensitive),
/// read from paragraphs and list items with their wrapped lines joined, so
/// a sentence is never cut at a line break.
fn matching(notes: &str, patterns: &[String]) -> Vec<String> {
    let lowered: Vec<String> = patterns
        .iter()
        .map(|p| p.to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    let mut passages: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in notes.lines() {
        let line = line.trim();
        let item =
            line.starts_with(['-', '*', '#']) || line.starts_with(|c: char| c.is_ascii_digit());
        if (line.is_empty() || item) && !current.is_empty() {
            passages.push(std::mem::take(&mut current));
        }
        if !line.is_empty() {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(line);
        }
    }
    if !current.is_empty() {
        passages.push(current);
    }
    passages
        .iter()
        .flat_map(|p| sentences(p))
        .filter(|s| {
            let l = s.to_lowercase();
            lowered.iter().any(|pat| l.contains(pat.as_str()))
        })
        .map(str::to_string)
        .collect()
}

/// `text` split after each `.`, `!` or `?` that a space follows.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1) == Some(&b' ') {
            out.push(text[start..=i].trim());
            start = i + 1;
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_release_and_bundled_parts() {
        assert_eq!(v("10.7.1+26.6.2").release, [10, 7, 1]);
        assert_eq!(v("v10.7.1+26.6.2").bundled, Some([26, 6, 2]));
        assert_eq!(v("1.2.3").bundled, None);
        for bad in [
            "",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "1.2.3+",
            "1.2.3+4.5",
            "latest",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ordering_and_latest() {
        assert!(v("10.7.10+26.6.2") > v("10.7.9+26.6.2"));
        assert!(v("10.7.1+26.6.3") > v("10.7.1+26.6.2"));
        let tags = ["10.7.1+26.6.2", "notes", "10.7.10+26.6.2", "v10.7.9+26.6.2"];
        assert_eq!(latest(tags).unwrap().raw, "10.7.10+26.6.2");
        assert!(latest(["x", "y"]).is_none());
    }

    #[test]
    fn a_major_bump_of_either_part_is_major() {
        assert!(v("10.7.1+26.6.2").is_major_bump_to(&v("11.0.0+26.6.2")));
        assert!(v("10.7.1+26.6.2").is_major_bump_to(&v("10.8.0+27.0.0")));
        assert!(!v("10.7.1+26.6.2").is_major_bump_to(&v("10.8.0+26.9.0")));
    }

    #[test]
    fn gate_holds_majors_and_manual_migrations_with_the_matching_notes() {
        let p: Vec<String> = DEFAULT_HOLD_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect();
        let from = v("10.7.1+26.6.2");
        assert_eq!(
            gate(Some(&from), &v("11.0.0+26.6.2"), "", &p),
            Some(Hold::Major(vec![]))
        );
        // A major bump carries its notes' matching passages too, and a
        // sentence wrapped over lines is whole.
        let wrapped = "Highlights.\n\n- Manual migration: run\n  `kc.sh migrate` before the first start.\n- Faster login.\n";
        assert_eq!(
            gate(Some(&from), &v("11.0.0+26.6.2"), wrapped, &p),
            Some(Hold::Major(vec![
                "- Manual migration: run `kc.sh migrate` before the first start.".into()
            ]))
        );
        let notes = "Fixes login.\nThis release requires a MANUAL MIGRATION of the realm table.\n";
        assert_eq!(
            gate(Some(&from), &v("10.7.2+26.6.2"), notes, &p),
            Some(Hold::ManualMigration(vec![
                "This release requires a MANUAL MIGRATION of the realm table.".into()
            ]))
        );
        assert_eq!(
            gate(Some(&from), &v("10.7.2+26.6.2"), "Fixes login.", &p),
            None
        );
        assert_eq!(
            gate(None, &v("10.7.2+26.6.2"), "", &p),
            None,
            "a first deploy has nothing to bump from"
        );
    }
}
