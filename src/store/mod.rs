//! The SQLite store (rusqlite, bundled): versioned migrations, WAL and a busy timeout so a
//! CLI and a TUI can share one database. One module per aggregate: [`builds`] (builds and
//! their log lines), [`manifests`] (components manifest entries), [`audit`], [`deploys`]
//! (releases, routes, instance events, verifications), [`updates`] (update checks, pending
//! updates, cached changelogs), [`lang`] (language packages), [`pushes`], [`repos`] (the
//! apt repositories a build script added to an image), [`runtime_logs`] (what instances
//! print).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

pub mod audit;
pub mod builds;
pub mod deploys;
pub mod health;
pub mod lang;
pub mod manifests;
pub mod metrics;
pub mod pushes;
pub mod repos;
pub mod runtime_logs;
pub mod updates;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
/// Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: builds, log lines, manifest entries, audit.
    r#"
    CREATE TABLE builds (
        id            INTEGER PRIMARY KEY,
        stack         TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('running','succeeded','failed','interrupted','cancelled')),
        started_at    TEXT NOT NULL,
        finished_at   TEXT,
        base_key      TEXT,
        base_cached   INTEGER,
        image_digest  TEXT,
        image_path    TEXT,
        failed_step   TEXT,
        error         TEXT,
        pid           INTEGER NOT NULL
    );
    CREATE INDEX builds_by_stack ON builds (stack, id);
    CREATE TABLE build_logs (
        build_id  INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        seq       INTEGER NOT NULL,
        ts        TEXT NOT NULL,
        stream    TEXT NOT NULL,
        line      TEXT NOT NULL,
        PRIMARY KEY (build_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE manifest_entries (
        build_id            INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        name                TEXT NOT NULL,
        version             TEXT NOT NULL,
        arch                TEXT NOT NULL,
        source              TEXT NOT NULL,
        source_version      TEXT NOT NULL,
        suite               TEXT NOT NULL,
        origin              TEXT NOT NULL,
        installed_size_kib  INTEGER,
        PRIMARY KEY (build_id, name, arch)
    ) WITHOUT ROWID;
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY,
        at      TEXT NOT NULL,
        who     TEXT NOT NULL,
        action  TEXT NOT NULL,
        stack   TEXT,
        detail  TEXT NOT NULL
    );
    "#,
    // 2: image pushes to registries (issue #6).
    r#"
    CREATE TABLE pushes (
        id          INTEGER PRIMARY KEY,
        build_id    INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        stack       TEXT NOT NULL,
        reference   TEXT NOT NULL,
        registry    TEXT NOT NULL,
        digest      TEXT NOT NULL,
        pushed_at   TEXT NOT NULL
    );
    CREATE INDEX pushes_by_stack ON pushes (stack, id);
    CREATE TABLE helm_releases (
        id             INTEGER PRIMARY KEY,
        stack          TEXT NOT NULL,
        build_id       INTEGER REFERENCES builds (id) ON DELETE SET NULL,
        action         TEXT NOT NULL CHECK (action IN ('upgrade','rollback')),
        kube_context   TEXT NOT NULL,
        namespace      TEXT NOT NULL,
        release        TEXT NOT NULL,
        revision       INTEGER NOT NULL,
        image          TEXT,
        at             TEXT NOT NULL
    );
    CREATE INDEX helm_releases_by_stack ON helm_releases (stack, id);
    "#,
    // 3: deploy (issue #5): releases (the desired state is the `live` release per stack),
    // stable route ports, instance events and build verifications.
    r#"
    CREATE TABLE releases (
        stack         TEXT NOT NULL,
        release       INTEGER NOT NULL,
        build_id      INTEGER NOT NULL,
        image_digest  TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ('deploying','live','superseded','failed')),
        replicas      INTEGER NOT NULL,
        created_at    TEXT NOT NULL,
        finished_at   TEXT,
        by            TEXT NOT NULL,
        rollback_of   INTEGER,
        error         TEXT,
        PRIMARY KEY (stack, release)
    );
    CREATE TABLE routes (
        stack  TEXT PRIMARY KEY,
        port   INTEGER NOT NULL
    );
    CREATE TABLE instance_events (
        id        INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        stack     TEXT NOT NULL,
        release   INTEGER NOT NULL,
        instance  TEXT NOT NULL,
        event     TEXT NOT NULL,
        detail    TEXT NOT NULL
    );
    CREATE TABLE verifications (
        build_id  INTEGER PRIMARY KEY,
        status    TEXT NOT NULL CHECK (status IN ('verified','verify-failed')),
        at        TEXT NOT NULL,
        detail    TEXT NOT NULL
    );
    "#,
    // 4 (issue #4): update checks with their time, their pending updates, language packages
    // per build, and parsed changelogs cached per (source package, version).
    r#"
    CREATE TABLE update_checks (
        id          INTEGER PRIMARY KEY,
        stack       TEXT NOT NULL,
        build_id    INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        checked_at  TEXT NOT NULL,
        pending     INTEGER NOT NULL,
        warnings    TEXT NOT NULL
    );
    CREATE INDEX update_checks_by_stack ON update_checks (stack, id);
    CREATE TABLE pending_updates (
        check_id          INTEGER NOT NULL REFERENCES update_checks (id) ON DELETE CASCADE,
        package           TEXT NOT NULL,
        arch              TEXT NOT NULL,
        installed         TEXT NOT NULL,
        candidate         TEXT NOT NULL,
        suite             TEXT NOT NULL,
        source            TEXT NOT NULL,
        source_installed  TEXT NOT NULL,
        source_candidate  TEXT NOT NULL,
        cves              TEXT NOT NULL,
        urgency           TEXT,
        UNIQUE (check_id, package, arch)
    );
    CREATE TABLE language_packages (
        build_id   INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        ecosystem  TEXT NOT NULL,
        name       TEXT NOT NULL,
        version    TEXT NOT NULL,
        location   TEXT NOT NULL,
        PRIMARY KEY (build_id, ecosystem, name, version, location)
    ) WITHOUT ROWID;
    CREATE TABLE changelogs (
        source      TEXT NOT NULL,
        version     TEXT NOT NULL,
        fetched_at  TEXT NOT NULL,
        entries     TEXT NOT NULL,
        PRIMARY KEY (source, version)
    ) WITHOUT ROWID;
    "#,
    // 5 (issue #4): newer versions of language packages, per update check.
    r#"
    CREATE TABLE language_updates (
        check_id   INTEGER NOT NULL REFERENCES update_checks (id) ON DELETE CASCADE,
        ecosystem  TEXT NOT NULL,
        package    TEXT NOT NULL,
        installed  TEXT NOT NULL,
        latest     TEXT NOT NULL,
        location   TEXT NOT NULL,
        registry   TEXT NOT NULL,
        PRIMARY KEY (check_id, ecosystem, package, installed)
    ) WITHOUT ROWID;
    "#,
    // 6 (issue #4): the non-Debian apt repositories a build script configured in the image,
    // with the keys that sign them, per build.
    r#"
    CREATE TABLE image_repos (
        build_id      INTEGER NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        uri           TEXT NOT NULL,
        suite         TEXT NOT NULL,
        components    TEXT NOT NULL,
        architectures TEXT NOT NULL,
        key_from      TEXT NOT NULL,
        fingerprints  TEXT NOT NULL,
        key_data      BLOB NOT NULL,
        trusted       INTEGER NOT NULL,
        file          TEXT NOT NULL,
        line          INTEGER NOT NULL,
        PRIMARY KEY (build_id, uri, suite)
    ) WITHOUT ROWID;
    "#,
    // 7 (issue #4, schedule/notify/auto-rebuild): CVEs from the feeds per pending update and
    // per check, and the follow-up actions done once per (stack, source, candidate):
    // `notify-command`, `notify-webhook`, `rebuild`.
    r#"
    ALTER TABLE pending_updates ADD COLUMN feed_cves TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE update_checks ADD COLUMN open_cves TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE update_actions (
        stack      TEXT NOT NULL,
        source     TEXT NOT NULL,
        candidate  TEXT NOT NULL,
        action     TEXT NOT NULL,
        at         TEXT NOT NULL,
        detail     TEXT NOT NULL,
        PRIMARY KEY (stack, source, candidate, action)
    ) WITHOUT ROWID;
    "#,
    // 8 (issue #5, keep_warm): the release of each stack whose instances the agent keeps
    // running unrouted, so a rollback to it switches at once.
    r#"
    CREATE TABLE warm_releases (
        stack    TEXT PRIMARY KEY,
        release  INTEGER NOT NULL
    );
    "#,
    // 9 (issue #11, the lock): the lock each build installed (TOML text), so any build can
    // be reproduced and its .debs kept by `prune`.
    r#"
    ALTER TABLE builds ADD COLUMN lock TEXT;
    "#,
    // 10 (issue #13, runtime logs): what instances print, per stack, release, instance and
    // stream, kept after they die; `health` marks a line as the health probe's own request
    // (see `store::runtime_logs::is_health_line`). Capped per stack by the agent's writer.
    r#"
    CREATE TABLE runtime_logs (
        id        INTEGER PRIMARY KEY,
        stack     TEXT NOT NULL,
        release   INTEGER NOT NULL,
        instance  TEXT NOT NULL,
        stream    TEXT NOT NULL,
        ts        TEXT NOT NULL,
        health    INTEGER NOT NULL DEFAULT 0,
        line      TEXT NOT NULL
    );
    CREATE INDEX runtime_logs_by_stack ON runtime_logs (stack, id);
    "#,
    // 11 (issue #13, route metrics): what the router saw per stack, release and minute
    // (`minute`: its start, Unix seconds); `latency` is an HdrHistogram (V2 encoding,
    // microseconds to the response head), merged when a minute is flushed twice.
    r#"
    CREATE TABLE route_metrics (
        stack            TEXT NOT NULL,
        release          INTEGER NOT NULL,
        minute           INTEGER NOT NULL,
        requests         INTEGER NOT NULL,
        status_1xx       INTEGER NOT NULL,
        status_2xx       INTEGER NOT NULL,
        status_3xx       INTEGER NOT NULL,
        status_4xx       INTEGER NOT NULL,
        status_5xx       INTEGER NOT NULL,
        upstream_errors  INTEGER NOT NULL,
        latency          BLOB NOT NULL,
        PRIMARY KEY (stack, release, minute)
    ) WITHOUT ROWID;
    CREATE INDEX route_metrics_by_minute ON route_metrics (stack, minute);
    "#,
    // 12 (issue #13, stack lifecycle): stacks stopped by `drover stop` (their live release
    // stays `live`; a restarted agent opens the route answering 503 and starts nothing).
    r#"
    CREATE TABLE stopped_stacks (
        stack  TEXT PRIMARY KEY,
        at     TEXT NOT NULL,
        by     TEXT NOT NULL
    );
    "#,
    // 13 (issue #14, the deps layer): the deps (framework) layer a build used, so `prune`
    // keeps the layers of kept images.
    r#"
    ALTER TABLE builds ADD COLUMN deps_key TEXT;
    ALTER TABLE builds ADD COLUMN deps_cached INTEGER NOT NULL DEFAULT 0;
    "#,
    // 14 (issue #14, recreate): how long a recreate left the route without a release, so
    // the next confirmation can say how long the stack will be unavailable.
    r#"
    ALTER TABLE releases ADD COLUMN unavailable_ms REAL;
    "#,
    // 15 (issue #15, VM images): the build's bootable disk image, as the JSON of
    // `build::vm::VmImage` (path, format, digest, size, kernel, boot packages).
    r#"
    ALTER TABLE builds ADD COLUMN vm TEXT;
    "#,
    // 16 (issue #13, a broken stack rolls back): the stack file's text each release was
    // deployed with, so a release stays operable when the file later breaks or is gone.
    r#"
    ALTER TABLE releases ADD COLUMN stack_toml TEXT;
    "#,
    // 17 (issue #13, health history): each instance's active health checks per minute
    // (`minute`: its start, Unix seconds): how many ran, how many failed, the slowest
    // (milliseconds) and the last failure's answer. Kept 7 days.
    r#"
    CREATE TABLE health_minutes (
        stack        TEXT NOT NULL,
        release      INTEGER NOT NULL,
        instance     TEXT NOT NULL,
        minute       INTEGER NOT NULL,
        checks       INTEGER NOT NULL,
        failures     INTEGER NOT NULL,
        max_ms       REAL NOT NULL,
        last_failure TEXT,
        PRIMARY KEY (stack, instance, minute)
    );
    CREATE INDEX health_minutes_release ON health_minutes (stack, release, minute);
    "#,
];

/// An open store. Cheap to open; each front end (CLI, TUI, job thread) opens its own.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Open (creating if needed) the database at `path` and apply pending migrations.
    ///
    /// Errors: the file cannot be opened, or it was written by a newer drover (its schema
    /// version is above the ones this binary knows).
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        // Private to its owner: SQLite creates the -wal and -shm files with the database
        // file's mode, so 0600 here covers them from now on (existing ones are fixed too).
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            restrict_to_owner(Path::new(&file));
        }
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate().with_context(|| {
            format!(
                "cannot migrate the store {} to the current schema",
                path.display()
            )
        })?;
        Ok(store)
    }

    /// Open a private in-memory store (tests, benchmarks).
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            anyhow::bail!(
                "the store has schema version {current} but this drover knows only {known}; \
                 use a newer drover or a different --state directory"
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// The underlying connection, for the aggregate modules.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Mutable access for transactions.
    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// Current time as RFC 3339 UTC with milliseconds, the format of every `*_at`/`ts` column.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Make a file we own 0600 (no-op when it does not exist or belongs to someone else).
fn restrict_to_owner(file: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = std::fs::metadata(file) else {
        return;
    };
    // SAFETY: geteuid has no preconditions.
    if meta.mode() & 0o077 != 0 && meta.uid() == unsafe { libc::geteuid() } {
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
    }
}
