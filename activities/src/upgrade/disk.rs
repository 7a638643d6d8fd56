//! Disk safety: what a snapshot or a cold run needs, against the free
//! space of the filesystem it would be written to, with a margin.

use std::path::{Path, PathBuf};

/// Bytes of `text` like `512MiB`, `2GiB`, `64KiB`, `1TiB` or `1000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 512MiB or 2GiB"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => {
            return Err(format!(
                "`{text}` is not a size like 512MiB or 2GiB (units: B, KiB, MiB, GiB, TiB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `bytes` for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// The nearest existing folder at or above `path` (what a folder not yet
/// created will be written to).
fn existing(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        match p.parent() {
            Some(parent) if parent != p => p = parent.to_path_buf(),
            _ => break,
        }
    }
    p
}

/// Bytes an unprivileged process may still write on the filesystem that
/// holds `path`.
pub fn free_bytes(path: &Path) -> Result<u64, String> {
    let at = existing(path);
    let s = rustix::fs::statvfs(&at).map_err(|e| format!("statvfs {}: {e}", at.display()))?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Bytes of the regular files below `paths` (missing paths: 0).
pub fn size_of(paths: &[PathBuf]) -> Result<u64, String> {
    let mut total = 0u64;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", p.display())),
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p).map_err(|e| format!("{}: {e}", p.display()))? {
                stack.push(entry.map_err(|e| format!("{}: {e}", p.display()))?.path());
            }
        } else if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

/// Whether `needs` bytes (what) plus `margin` fit in the free space where
/// `dest` is: the figures either way.
pub fn fits(what: &str, needs: u64, margin: u64, dest: &Path) -> Result<String, String> {
    let free = free_bytes(dest)?;
    let wanted = needs.saturating_add(margin);
    let figures = format!(
        "{what} needs {} plus a margin of {} on the filesystem of {}, which has {} free",
        human(needs),
        human(margin),
        dest.display(),
        human(free)
    );
    if wanted <= free {
        Ok(figures)
    } else {
        Err(format!("does not fit: {figures}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units_and_bad_ones_are_named() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("5 parsecs").unwrap_err().contains("units"));
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999TiB").unwrap_err().contains("too large"));
        assert_eq!(human(1536 << 20), "1.5 GiB");
    }

    #[test]
    fn what_is_written_is_measured_against_the_real_free_space() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("v/db")).unwrap();
        std::fs::write(dir.path().join("v/db/a.bin"), vec![0u8; 3000]).unwrap();
        std::fs::write(dir.path().join("v/b.txt"), b"12345").unwrap();
        assert_eq!(
            size_of(&[dir.path().join("v"), dir.path().join("gone")]),
            Ok(3005)
        );
        let not_yet = dir.path().join("snapshots/last-known-good");
        assert!(free_bytes(&not_yet).unwrap() > 0);
        assert!(fits("the snapshot", 3005, 0, &not_yet).is_ok());
        let refused = fits("the snapshot", 3005, 1 << 60, &not_yet).unwrap_err();
        assert!(
            refused.contains("does not fit") && refused.contains("free"),
            "{refused}"
        );
    }
}
