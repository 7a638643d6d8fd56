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

/// Why an upgrade is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// A major bump of the release or of the bundled app.
    Major,
    /// The release notes call for a manual migration; the matching lines.
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
    if from.is_some_and(|f| f.is_major_bump_to(to)) {
        return Some(Hold::Major);
    }
    let lowered: Vec<String> = patterns.iter().map(|p| p.to_lowercase()).collect();
    let matches: Vec<String> = notes
        .lines()
        .filter(|line| {
            let l = line.to_lowercase();
            lowered
                .iter()
                .any(|p| !p.is_empty() && l.contains(p.as_str()))
        })
        .map(|l| l.trim().to_string())
        .collect();
    (!matches.is_empty()).then_some(Hold::ManualMigration(matches))
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
            Some(Hold::Major)
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
