//! The database: one connection type over SQLite and PostgreSQL, chosen by the
//! URL's scheme; connecting, migrating, and the schema check every command makes.
//!
//! Query functions live in the area modules (`users`, `assignments`, …). Each is
//! written once against the typed schema and compiled for both backends by
//! [`with_conn!`]; nothing outside `db` names a Diesel table.

use anyhow::{Context, anyhow};
use diesel::connection::{AnsiTransactionManager, CacheSize, SimpleConnection, TransactionManager};
use diesel::dsl::max;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sqlite::Sqlite;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub mod assignments;
pub mod bounces;
pub mod caps;
pub mod contacts;
pub mod erasure;
pub mod guardians;
pub mod queue;
pub mod reminders;
pub mod retention;
pub mod schema;
pub mod summaries;
pub mod teachers;
pub mod types;
pub mod url;
pub mod users;

pub use url::DatabaseUrl;

/// glibc serves a large allocation (a page of due rows) from mmap, and
/// after freeing one raises its threshold so that later ones come from the
/// heap, which then keeps growing with the size of the run. A fixed
/// threshold keeps the peak flat (BENCHMARKS.md has the measurement).
fn keep_memory_flat() {
    #[cfg(target_env = "gnu")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets a tuning parameter of the allocator,
        // under glibc's own lock.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        });
    }
}

/// Diesel names the statements it caches `__diesel_stmt_N`. Such a name that
/// the server already has, or has lost, means that this session's statements
/// share server connections with others': a pooler in transaction mode. This
/// can only be told from the server's message, wherever the query was made,
/// so every failure of a command passes here.
pub fn explain_pooler(failure: crate::error::Failure) -> crate::error::Failure {
    let reason = &failure.reason;
    let pooled = reason.contains("prepared statement \"__diesel_stmt")
        && (reason.contains("already exists") || reason.contains("does not exist"));
    match pooled {
        true => crate::error::Failure::new(
            failure.kind,
            format!(
                "the database is probably behind a connection pooler in transaction mode, where prepared \
                 statements do not survive; add `?prepared_statements=false` to the database URL ({reason})"
            ),
        ),
        false => failure,
    }
}

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How long a SQLite writer waits for another process's write lock before giving up.
/// Our write transactions last milliseconds, so reaching this means something is stuck.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 60_000;

/// An open connection to one of the two backends.
pub enum Db {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$conn` bound to the inner connection, whichever backend it is.
/// The body is compiled once per backend, so it must be plain typed Diesel.
macro_rules! with_conn {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($conn) => $body,
            $crate::db::Db::Sqlite($conn) => $body,
        }
    };
}
pub(crate) use with_conn;

/// Runs `$body` in a write transaction. On SQLite that is `BEGIN IMMEDIATE`, which
/// takes the write lock first: a deferred transaction that reads and then writes
/// fails with "database is locked" when another process wrote in between.
macro_rules! write_transaction {
    ($db:expr, $conn:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres(conn) => conn.transaction::<_, anyhow::Error, _>(|$conn| $body),
            $crate::db::Db::Sqlite(conn) => conn.immediate_transaction::<_, anyhow::Error, _>(|$conn| $body),
        }
    };
}
pub(crate) use write_transaction;

impl Db {
    /// Opens the database for a command that needs the schema in place.
    pub fn open(url: &DatabaseUrl) -> anyhow::Result<Db> {
        if let DatabaseUrl::Sqlite { path, .. } = url
            && !path.exists()
        {
            let note = url.default_note().map(|note| format!(" ({note})")).unwrap_or_default();
            return Err(anyhow!(
                "database `{}` does not exist{note}; create it with `reminders migrate`",
                url.display()
            ));
        }
        let mut db = Db::connect(url)?;
        db.check_migrated(url)?;
        Ok(db)
    }

    /// Opens (and for SQLite creates) the database without checking the schema.
    pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Db> {
        keep_memory_flat();
        let context = || format!("cannot connect to the database `{}`", url.display());
        match url {
            DatabaseUrl::Postgres {
                url,
                prepared_statements,
            } => {
                let mut conn = PgConnection::establish(url.as_str())
                    .map_err(|e| anyhow!(e.to_string()))
                    .with_context(context)?;
                if *prepared_statements {
                    // Diesel keeps statements prepared; a generic plan for a range
                    // on due_at cannot know how narrow the range is, and picks
                    // scans. A session setting is safe here: a named statement
                    // cache only works when this session keeps its server
                    // connection (direct, or a pooler in session mode).
                    // JIT compiling pays off for long analytic queries, never for
                    // ours: it was a large share of a big `summary` (BENCHMARKS.md).
                    conn.batch_execute("SET plan_cache_mode = force_custom_plan; SET jit = off")
                        .with_context(context)?;
                } else {
                    // Behind a pooler in transaction mode each statement may land
                    // on another server connection: no named statements, and no
                    // session settings. Unnamed statements are planned for their
                    // parameters each time, so plan_cache_mode is not needed.
                    conn.set_prepared_statement_cache_size(CacheSize::Disabled);
                }
                Ok(Db::Postgres(conn))
            }
            DatabaseUrl::Sqlite { path, .. } => {
                let folder = std::path::absolute(path)
                    .ok()
                    .and_then(|path| path.parent().map(std::path::Path::to_path_buf));
                if let Some(folder) = folder.filter(|folder| !folder.is_dir()) {
                    return Err(anyhow!(
                        "the folder `{}` does not exist; create it first (`mkdir -p {}`)",
                        folder.display(),
                        folder.display()
                    ))
                    .with_context(context);
                }
                let path = path
                    .to_str()
                    .ok_or_else(|| anyhow!("the SQLite path is not valid UTF-8"))?;
                let mut conn = SqliteConnection::establish(path)
                    .map_err(|e| anyhow!(e.to_string()))
                    .with_context(context)?;
                // busy_timeout first, so the pragmas below wait rather than fail.
                // WAL lets readers run beside the one writer; NORMAL sync in WAL
                // mode survives a killed process, which is the crash we guard.
                // secure_delete zeroes what a delete or update frees: an
                // address changed or removed long before a `user forget` must
                // not wait in a free page (BENCHMARKS.md: no cost measurable).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; \
                     PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;"
                ))
                .with_context(context)?;
                // Switching a new file to WAL needs the file to itself, and
                // SQLite answers "locked" at once, without the busy timeout,
                // while another process is switching it too (runs started
                // together on a new file): try again for a while.
                let started = std::time::Instant::now();
                loop {
                    match conn.batch_execute("PRAGMA journal_mode = WAL") {
                        Ok(()) => break,
                        Err(error)
                            if error.to_string().contains("locked")
                                && started.elapsed().as_millis() < u128::from(SQLITE_BUSY_TIMEOUT_MS) =>
                        {
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        Err(error) => return Err(error).with_context(context),
                    }
                }
                Ok(Db::Sqlite(conn))
            }
        }
    }

    /// The database server's clock, on PostgreSQL (`None` on SQLite, which is
    /// a file on this host).
    pub fn server_clock(&mut self) -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
        match self {
            Db::Postgres(conn) => diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamptz>("now()"))
                .get_result(conn)
                .map(Some)
                .context("cannot read the database server's clock"),
            Db::Sqlite(_) => Ok(None),
        }
    }

    /// Runs `work` in one write transaction (BEGIN IMMEDIATE on SQLite) that
    /// commits only if it succeeds: all or nothing, for bulk imports. Query
    /// functions called inside that open their own transactions nest as savepoints.
    pub fn in_write_transaction<T>(&mut self, work: impl FnOnce(&mut Db) -> anyhow::Result<T>) -> anyhow::Result<T> {
        match self {
            Db::Postgres(conn) => AnsiTransactionManager::begin_transaction(conn),
            Db::Sqlite(conn) => AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE"),
        }
        .context("cannot start a transaction")?;
        match work(self) {
            Ok(value) => {
                with_conn!(self, conn => AnsiTransactionManager::commit_transaction(conn)).context("cannot commit")?;
                Ok(value)
            }
            Err(error) => {
                let _ = with_conn!(self, conn => AnsiTransactionManager::rollback_transaction(conn));
                Err(error)
            }
        }
    }

    /// Settings for a bulk load into SQLite: a bigger page cache for the
    /// index updates, 32 MiB. A larger one took far more memory for no more
    /// speed (BENCHMARKS.md has the measurement). PostgreSQL needs none: the
    /// import uses COPY.
    pub fn tune_for_bulk_load(&mut self) -> anyhow::Result<()> {
        if let Db::Sqlite(conn) = self {
            conn.batch_execute("PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;")?;
        }
        Ok(())
    }

    /// For `due`, which reads rows scattered over the file and writes none:
    /// SQLite reads it through a memory map instead of copying each page in,
    /// which is faster. Not for runs that send, nor for `summary`, which
    /// reads every page: mapped pages count in the memory of the process,
    /// and `summary` took far more memory and more time with them
    /// (BENCHMARKS.md has the measurements).
    pub fn map_for_reading(&mut self) -> anyhow::Result<()> {
        match self {
            Db::Postgres(_) => Ok(()),
            Db::Sqlite(conn) => conn
                .batch_execute("PRAGMA mmap_size = 268435456")
                .context("cannot map the database for reading"),
        }
    }

    /// On SQLite, copies the WAL back into the file and empties it, so that
    /// no old page stays in either. A connection reading an older snapshot
    /// holds that up; after `patience` of trying, `Ok(false)`. PostgreSQL
    /// has no such file: `Ok(true)`.
    pub fn write_wal_through(&mut self, patience: std::time::Duration) -> anyhow::Result<bool> {
        #[derive(QueryableByName)]
        struct Checkpoint {
            /// 1 when a reader or writer kept the checkpoint from finishing.
            #[diesel(sql_type = diesel::sql_types::Integer)]
            busy: i32,
        }
        /// How long one try waits for readers before it reports busy.
        const TRY_MS: u32 = 250;
        let Db::Sqlite(conn) = self else {
            return Ok(true);
        };
        let context = "cannot write the WAL back into the database file";
        conn.batch_execute(&format!("PRAGMA busy_timeout = {TRY_MS}"))
            .context(context)?;
        let deadline = std::time::Instant::now() + patience;
        let done = loop {
            match diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result::<Checkpoint>(conn) {
                Ok(row) if row.busy == 0 => break true,
                Ok(_) => {}
                Err(diesel::result::Error::DatabaseError(_, info))
                    if info.message().contains("locked") || info.message().contains("busy") => {}
                Err(error) => return Err(error).context(context),
            }
            if std::time::Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        conn.batch_execute(&format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
            .context(context)?;
        Ok(done)
    }

    /// Refreshes the planner's statistics after a bulk load, so the next cron
    /// run's queries use the indexes. (Raw SQL: the DSL has no ANALYZE.)
    pub fn analyze(&mut self, table: &str) -> anyhow::Result<()> {
        with_conn!(self, conn => conn.batch_execute(&format!("ANALYZE {table}")))
            .with_context(|| format!("cannot analyze `{table}`"))
    }

    /// Applies pending migrations and returns the names of those applied.
    /// Runs that start together take turns: on PostgreSQL a lock held for
    /// the transaction (which, unlike a session lock, also holds behind a
    /// pooler in transaction mode), on SQLite the write lock. The others then
    /// find nothing left to apply.
    pub fn migrate(&mut self) -> anyhow::Result<Vec<String>> {
        /// An arbitrary key that names "the reminders schema" among advisory locks.
        const MIGRATION_LOCK: i64 = 0x7265_6d69_6e64;
        let applied = match self {
            Db::Postgres(conn) => conn.transaction(|conn| {
                conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))?;
                conn.run_pending_migrations(POSTGRES_MIGRATIONS)
                    .map(|applied| {
                        applied
                            .into_iter()
                            .map(|version| version.to_string())
                            .collect::<Vec<_>>()
                    })
                    .map_err(diesel::result::Error::QueryBuilderError)
            }),
            Db::Sqlite(conn) => conn.immediate_transaction(|conn| {
                conn.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|applied| {
                        applied
                            .into_iter()
                            .map(|version| version.to_string())
                            .collect::<Vec<_>>()
                    })
                    .map_err(diesel::result::Error::QueryBuilderError)
            }),
        }
        .map_err(|error| anyhow!("{error}"))
        .context("migration failed")?;
        Ok(applied)
    }

    /// Fails with a pointer to `reminders migrate` unless every embedded migration
    /// has been applied. One indexed read: cheap enough for every cron run.
    fn check_migrated(&mut self, url: &DatabaseUrl) -> anyhow::Result<()> {
        let latest = self.latest_embedded_migration()?;
        let applied: Result<Option<String>, diesel::result::Error> = with_conn!(self, conn =>
            migrations_table::table.select(max(migrations_table::version)).first(conn));
        let hint = || {
            let note = url.default_note().map(|note| format!(" ({note})")).unwrap_or_default();
            format!(
                "the database `{}` is not migrated{note}; run `reminders migrate`",
                url.display()
            )
        };
        match applied {
            Ok(Some(version)) if version > latest => Err(anyhow!(
                "the database `{}` has schema version {version}, newer than this reminders knows ({latest}): \
                 another host upgraded it; upgrade this binary too",
                url.display()
            )),
            Ok(Some(version)) if version == latest => Ok(()),
            Ok(Some(version)) => Err(anyhow!(
                "the database `{}` has schema version {version} but this reminders needs {latest}; run `reminders migrate`",
                url.display()
            )),
            Ok(None) => Err(anyhow!(hint())),
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("no such table") || info.message().contains("does not exist") =>
            {
                Err(anyhow!(hint()))
            }
            Err(error) => Err(error).with_context(|| format!("cannot read the schema version of `{}`", url.display())),
        }
    }

    fn latest_embedded_migration(&self) -> anyhow::Result<String> {
        let versions: Vec<String> = match self {
            Db::Postgres(_) => MigrationSource::<Pg>::migrations(&POSTGRES_MIGRATIONS)
                .map_err(|error| anyhow!("{error}"))?
                .iter()
                .map(|migration| migration.name().version().to_string())
                .collect(),
            Db::Sqlite(_) => MigrationSource::<Sqlite>::migrations(&SQLITE_MIGRATIONS)
                .map_err(|error| anyhow!("{error}"))?
                .iter()
                .map(|migration| migration.name().version().to_string())
                .collect(),
        };
        versions
            .into_iter()
            .max()
            .ok_or_else(|| anyhow!("no migrations are embedded"))
    }
}

// Diesel's own bookkeeping table, read (never written) by the schema check.
diesel::table! {
    #[sql_name = "__diesel_schema_migrations"]
    migrations_table (version) {
        version -> Text,
    }
}
