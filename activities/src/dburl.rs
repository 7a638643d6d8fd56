//! A database URL, understood once: which backend it names (SQLite or
//! PostgreSQL), its SQLite file, its PostgreSQL database, and its password,
//! which is redacted in every message and split off before a client program
//! sees the URL (programs get it through their environment, never argv).

use std::path::{Path, PathBuf};

use steward_proto::vocab::StoreBackend;

/// A URL that names neither SQLite nor PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported database_url `{0}` (use sqlite://PATH or postgres://...)")]
pub struct Unsupported(pub String);

/// A `sqlite:` or `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: StoreBackend,
}

impl DatabaseUrl {
    /// The URL, if it names a backend steward speaks.
    pub fn parse(url: &str) -> Result<Self, Unsupported> {
        let backend = if url.starts_with("sqlite:") {
            StoreBackend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            StoreBackend::Postgres
        } else {
            return Err(Unsupported(redact(url)));
        };
        Ok(Self {
            url: url.to_string(),
            backend,
        })
    }

    /// Which backend.
    pub fn backend(&self) -> StoreBackend {
        self.backend
    }

    /// Whether it is a SQLite URL.
    pub fn is_sqlite(&self) -> bool {
        self.backend == StoreBackend::Sqlite
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced, for messages and logs.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The file of a SQLite URL (`sqlite://path?mode=...`); None for
    /// PostgreSQL and for `sqlite::memory:`.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let rest = self.url.strip_prefix("sqlite:")?.trim_start_matches("//");
        let file = rest.split('?').next().unwrap_or(rest);
        (!file.is_empty() && file != ":memory:").then(|| PathBuf::from(file))
    }

    /// A SQLite URL that creates its file (and the file's folder) when
    /// missing; any other URL as it is. The file is private to steward
    /// (mode 0600: it holds the audit archive, every run's history), and a
    /// folder created for it too (0700).
    pub fn creating(&self) -> std::io::Result<String> {
        if !self.is_sqlite() {
            return Ok(self.url.clone());
        }
        if let Some(parent) = self
            .sqlite_file()
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
        {
            crate::files::private_dir(parent)?;
        }
        if let Some(file) = self.sqlite_file() {
            crate::files::private_file(&file)?;
        }
        Ok(if self.url.contains("mode=") {
            self.url.clone()
        } else if self.url.contains('?') {
            format!("{}&mode=rwc", self.url)
        } else {
            format!("{}?mode=rwc", self.url)
        })
    }

    /// The database name of a PostgreSQL URL.
    pub fn database_name(&self) -> String {
        let base = self.url.split('?').next().unwrap_or(&self.url);
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        base[scheme_end..]
            .split_once('/')
            .map(|(_, db)| db.to_string())
            .unwrap_or_default()
    }

    /// The PostgreSQL server a URL names, `host:port` (port 5432 unless
    /// given; `localhost` as `127.0.0.1`), to tell two servers apart.
    pub fn server(&self) -> String {
        let base = self.url.split('?').next().unwrap_or(&self.url);
        let rest = base.find("://").map_or(base, |i| &base[i + 3..]);
        let authority = rest.split('/').next().unwrap_or_default();
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !p.contains(']') => (h, p),
            _ => (hostport, "5432"),
        };
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{port}")
    }

    /// The same server with database `db` instead.
    pub fn with_database(&self, db: &str) -> Self {
        let (base, query) = match self.url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.url.as_str(), None),
        };
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        let path_start = base[scheme_end..]
            .find('/')
            .map(|i| scheme_end + i)
            .unwrap_or(base.len());
        let mut url = format!("{}/{db}", &base[..path_start]);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Self {
            url,
            backend: self.backend,
        }
    }

    /// The URL without its password, and the password.
    pub fn split_password(&self) -> (String, Option<String>) {
        let url = &self.url;
        let (Some(scheme), Some(at)) = (url.find("://"), url.rfind('@')) else {
            return (url.clone(), None);
        };
        if at < scheme {
            return (url.clone(), None);
        }
        let creds = &url[scheme + 3..at];
        match creds.split_once(':') {
            Some((user, password)) => (
                format!("{}{user}{}", &url[..scheme + 3], &url[at..]),
                Some(password.to_string()),
            ),
            None => (url.clone(), None),
        }
    }
}

impl std::fmt::Display for DatabaseUrl {
    /// Shows the URL redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Whether `url` names a MySQL or MariaDB server (`mysql://`,
/// `mariadb://`): a backfill's target may; the state store may not.
pub fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// A backfill target's URL: SQLite, PostgreSQL, MySQL or MariaDB.
pub fn check_target(url: &str) -> Result<(), String> {
    if is_mysql(url) || DatabaseUrl::parse(url).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "unsupported database_url `{}` (use sqlite://PATH, postgres://..., mysql://... or mariadb://...)",
            redact(url)
        ))
    }
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_backends_and_redact_passwords() {
        let pg = DatabaseUrl::parse("postgres://u:secret@h:5432/db?sslmode=disable").unwrap();
        assert_eq!(pg.backend(), StoreBackend::Postgres);
        assert_eq!(pg.redacted(), "postgres://u:***@h:5432/db?sslmode=disable");
        assert_eq!(pg.to_string(), pg.redacted());
        assert_eq!(pg.database_name(), "db");
        assert_eq!(
            pg.with_database("scratch").as_str(),
            "postgres://u:secret@h:5432/scratch?sslmode=disable"
        );
        assert_eq!(
            pg.split_password(),
            (
                "postgres://u@h:5432/db?sslmode=disable".to_string(),
                Some("secret".to_string())
            )
        );
        assert_eq!(pg.sqlite_file(), None);
        assert_eq!(pg.server(), "h:5432");
        let local = DatabaseUrl::parse("postgres://postgres@localhost/postgres").unwrap();
        assert_eq!(local.server(), "127.0.0.1:5432");
        let lite = DatabaseUrl::parse("sqlite://a/b.db?mode=rw").unwrap();
        assert!(lite.is_sqlite());
        assert_eq!(lite.sqlite_file(), Some(PathBuf::from("a/b.db")));
        assert_eq!(lite.redacted(), "sqlite://a/b.db?mode=rw");
        let memory = DatabaseUrl::parse("sqlite::memory:").unwrap();
        assert_eq!(memory.sqlite_file(), None);
        assert!(memory.creating().unwrap().ends_with("mode=rwc"));
        let e = DatabaseUrl::parse("mysql://u:pw@x/db").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported database_url `mysql://u:***@x/db` (use sqlite://PATH or postgres://...)"
        );
    }

    #[test]
    fn a_backfill_target_may_be_mysql_or_mariadb_where_the_store_may_not() {
        for url in [
            "mysql://u:pw@x:3306/db",
            "mariadb://u@x/db",
            "postgres://x/db",
            "sqlite://a.db",
        ] {
            assert_eq!(check_target(url), Ok(()), "{url}");
        }
        assert_eq!(
            check_target("mongodb://u:pw@x/db").unwrap_err(),
            "unsupported database_url `mongodb://u:***@x/db` (use sqlite://PATH, postgres://..., mysql://... or mariadb://...)"
        );
        assert!(DatabaseUrl::parse("mariadb://u@x/db").is_err());
    }

    #[test]
    fn a_sqlite_url_creates_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x/y/state.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", file.display())).unwrap();
        assert_eq!(
            url.creating().unwrap(),
            format!("sqlite://{}?mode=rwc", file.display())
        );
        assert!(dir.path().join("x/y").is_dir());
    }
}
