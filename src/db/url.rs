//! The database URL: `postgres://…` for PostgreSQL, anything else a SQLite
//! file path, and the pooler switch (`?prepared_statements=false`).

use std::path::PathBuf;

use crate::error::invalid;
use crate::redact::{hide, hide_secrets_of_url, mask_url, percent_decode, redact};

/// The SQLite file used when neither `--database-url` nor `DATABASE_URL` is set.
pub const DEFAULT_SQLITE_PATH: &str = "reminders.db";

/// Where the data lives, chosen by the URL's scheme.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    /// `url` is what libpq gets: our own switches are taken out of it.
    Postgres { url: url::Url, prepared_statements: bool },
    Sqlite {
        path: PathBuf,
        /// No DATABASE_URL was given: the default file in the current directory.
        by_default: bool,
    },
}

/// The URL switches that turn Diesel's prepared-statement cache off, for a
/// pooler in transaction mode: `prepared_statements=false`, or its alias
/// `pgbouncer=true` (the name some tools use). Each with the value that keeps
/// the cache on.
const PREPARED_STATEMENT_SWITCHES: [(&str, bool); 2] = [("prepared_statements", true), ("pgbouncer", false)];

/// libpq's keyword/value form, `host=db port=5432 dbname=app password=…`:
/// without this check it would be taken for a SQLite file of that name.
fn is_keyword_connection_string(raw: &str) -> bool {
    const LIBPQ_KEYWORDS: [&str; 12] = [
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "sslmode",
        "sslrootcert",
        "service",
        "connect_timeout",
        "application_name",
    ];
    raw.split_whitespace().any(|pair| {
        pair.split_once('=')
            .is_some_and(|(key, _)| LIBPQ_KEYWORDS.contains(&key.trim().to_ascii_lowercase().as_str()))
    })
}

impl DatabaseUrl {
    /// `postgres://` or `postgresql://` is PostgreSQL; anything else is a SQLite
    /// path, with an optional `sqlite://` prefix.
    pub fn parse(raw: Option<&str>) -> anyhow::Result<DatabaseUrl> {
        let given = raw.map(str::trim);
        let raw = given.unwrap_or(DEFAULT_SQLITE_PATH);
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            hide_secrets_of_url(raw);
            let url = url::Url::parse(raw)
                .map_err(|error| invalid(format!("database URL `{}` is malformed: {error}", mask_url(raw))))?;
            // libpq reads this form, which may escape the password differently.
            hide_secrets_of_url(url.as_str());
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid(format!("database URL `{}` names no host", redact(&url))));
            }
            let (url, prepared_statements) = take_prepared_statement_switch(url)?;
            return Ok(DatabaseUrl::Postgres {
                url,
                prepared_statements,
            });
        }
        if is_keyword_connection_string(raw) {
            // It may hold a password: never shown, whatever else goes wrong.
            hide(raw);
            return Err(invalid(
                "the database URL is a keyword connection string (`host=… dbname=…`), which this tool does not \
                 read; write it as a URL: postgres://USER:PASSWORD@HOST:PORT/DBNAME (percent-encode any `@`, `:`, \
                 `/` or `#` in the password)",
            ));
        }
        let path = raw.strip_prefix("sqlite://").unwrap_or(raw);
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(invalid(format!(
                "database URL scheme `{scheme}` is not supported: use `postgres://…` or a SQLite file path"
            )));
        }
        if path.is_empty() {
            return Err(invalid("the SQLite database path is empty"));
        }
        Ok(DatabaseUrl::Sqlite {
            path: PathBuf::from(path),
            by_default: raw == DEFAULT_SQLITE_PATH && given.is_none(),
        })
    }

    /// How the database was chosen, when the operator did not choose it:
    /// every message about a missing or unmigrated database says so, since
    /// a typo in `.env` otherwise looks like an empty database.
    pub fn default_note(&self) -> Option<String> {
        match self {
            DatabaseUrl::Sqlite { path, by_default: true } => {
                let absolute = std::env::current_dir()
                    .map(|dir| dir.join(path))
                    .unwrap_or_else(|_| path.clone());
                Some(format!(
                    "no DATABASE_URL is set, so this is the default SQLite file {}",
                    absolute.display()
                ))
            }
            _ => None,
        }
    }

    /// The URL with any password masked, safe to print.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Postgres { url, .. } => redact(url),
            // In full: a relative name says nothing when cron mails the line.
            DatabaseUrl::Sqlite { path, .. } => std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
        }
    }
}

/// Takes `prepared_statements=` and `pgbouncer=` out of the query, since
/// libpq refuses parameters it does not know, and returns whether prepared
/// statements stay on (the default). The other parameters are kept byte for
/// byte: re-encoding them could change how libpq decodes a password.
fn take_prepared_statement_switch(mut url: url::Url) -> anyhow::Result<(url::Url, bool)> {
    let Some(query) = url.query().map(str::to_string) else {
        return Ok((url, true));
    };
    let mut prepared_statements = true;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let Some((name, cache_on)) = PREPARED_STATEMENT_SWITCHES.iter().find(|(name, _)| *name == key) else {
            kept.push(pair);
            continue;
        };
        let value = match percent_decode(value).to_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => true,
            "false" | "0" | "off" | "no" => false,
            other => {
                return Err(invalid(format!(
                    "database URL parameter `{name}={other}` is not understood: use `{name}=true` or `{name}=false`"
                )));
            }
        };
        prepared_statements &= value == *cache_on;
    }
    let kept = kept.join("&");
    url.set_query((!kept.is_empty()).then_some(kept.as_str()));
    Ok((url, prepared_statements))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert!(
            matches!(DatabaseUrl::parse(None).unwrap(), DatabaseUrl::Sqlite { path, by_default: true } if path.as_os_str() == "reminders.db")
        );
        assert!(
            matches!(DatabaseUrl::parse(Some("sqlite://x.db")).unwrap(), DatabaseUrl::Sqlite { path, by_default: false } if path.as_os_str() == "x.db")
        );
        assert!(matches!(
            DatabaseUrl::parse(Some("postgresql://h/db")).unwrap(),
            DatabaseUrl::Postgres {
                prepared_statements: true,
                ..
            }
        ));
        assert!(DatabaseUrl::parse(Some("mysql://h/db")).is_err());
        let keywords = DatabaseUrl::parse(Some("host=db.example port=5432 password=kw-Secret-1 dbname=app"));
        let message = format!("{:#}", keywords.expect_err("a keyword string is refused"));
        assert!(
            message.contains("postgres://USER:PASSWORD@HOST:PORT/DBNAME"),
            "{message}"
        );
        assert!(!message.contains("kw-Secret-1"), "{message}");
        assert!(
            DatabaseUrl::parse(Some("school=2026.db")).is_ok(),
            "a file name with `=` is still a path"
        );
        assert!(DatabaseUrl::parse(Some("postgres://u:p@h:notaport/db")).is_err());
    }

    #[test]
    fn the_prepared_statement_switch_is_taken_out_of_the_url() {
        let parse = |raw| match DatabaseUrl::parse(Some(raw)).unwrap() {
            DatabaseUrl::Postgres {
                url,
                prepared_statements,
            } => (url.to_string(), prepared_statements),
            DatabaseUrl::Sqlite { .. } => unreachable!(),
        };
        assert_eq!(
            parse("postgres://h/db?prepared_statements=false"),
            ("postgres://h/db".into(), false)
        );
        assert_eq!(
            parse("postgres://h/db?pgbouncer=true"),
            ("postgres://h/db".into(), false)
        );
        assert_eq!(
            parse("postgres://h/db?pgbouncer=false"),
            ("postgres://h/db".into(), true)
        );
        assert_eq!(
            parse("postgres://u:p@h/db?sslmode=require&prepared_statements=false&password=a%2Bb"),
            ("postgres://u:p@h/db?sslmode=require&password=a%2Bb".into(), false)
        );
        assert_eq!(
            parse("postgres://h/db?sslmode=disable"),
            ("postgres://h/db?sslmode=disable".into(), true)
        );
        assert!(DatabaseUrl::parse(Some("postgres://h/db?prepared_statements=maybe")).is_err());
    }

    #[test]
    fn passwords_are_never_shown() {
        let url = DatabaseUrl::parse(Some("postgres://alice:s3cret@db.example/app")).unwrap();
        assert_eq!(url.display(), "postgres://alice:***@db.example/app");
        let error = DatabaseUrl::parse(Some("postgres://alice:s3cret@db:x/app")).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
