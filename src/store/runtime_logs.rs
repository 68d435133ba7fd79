//! Runtime logs: the lines instances print (stdout/stderr, and the `test` script's output),
//! per stack, release, instance and stream, kept after the instances are gone.
//!
//! Rows have a global increasing `id` (SQLite rowid); a stack's log is its rows in `id`
//! order, read by keyset (`id > after`) through the `(stack, id)` index, so paging is
//! independent of the log's length. The agent's writer
//! ([`crate::deploy::runtime_log::LogSink`]) caps each stack's log with
//! [`Store::trim_runtime_logs`].

use anyhow::Result;
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Store;

/// One stored runtime log line (the `drover logs --runtime --json` shape, one object a
/// line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeLine {
    /// Row id, increasing across all stacks (ignored by [`Store::append_runtime_logs`]).
    pub id: i64,
    /// Stack name.
    pub stack: String,
    /// Release number of the instance (0 when the instance id names none).
    pub release: i64,
    /// Instance id, e.g. `hello-r3-2`, or `hello-r3-2-test` for the `test` script.
    pub instance: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 UTC time the agent read the line, with milliseconds.
    pub ts: String,
    /// Whether the line is the health probe's own request ([`is_health_line`]).
    pub health: bool,
    /// The text, sanitised for a terminal (no escapes), without its newline.
    pub line: String,
}

/// One line of a window read by [`Store::runtime_log_window`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowLine {
    /// Row id.
    pub id: i64,
    /// Instance id.
    pub instance: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// `HH:MM:SS.mmm` (UTC) of the stored RFC 3339 time.
    pub time: String,
    /// The text, already sanitised for a terminal by the writer.
    pub line: String,
}

/// Which lines of a stack's runtime log to read. The default is every line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeFilter {
    /// Only this release's instances.
    pub release: Option<i64>,
    /// Only this instance (its `-test` script output included).
    pub instance: Option<String>,
    /// Leave out the health probe's requests.
    pub hide_health: bool,
    /// Only lines at or after this RFC 3339 UTC time (compared as text: same format).
    pub since: Option<String>,
}

/// The `WHERE` clause shared by every filtered query: `?1` stack, `?2` release, `?3`
/// instance, `?4` hide health, `?5` since.
const WHERE: &str = "stack = ?1 AND (?2 IS NULL OR release = ?2) \
     AND (?3 IS NULL OR instance = ?3 OR instance = ?3 || '-test') \
     AND (?4 = 0 OR health = 0) AND (?5 IS NULL OR ts >= ?5)";

fn row(r: &Row<'_>) -> rusqlite::Result<RuntimeLine> {
    Ok(RuntimeLine {
        id: r.get(0)?,
        stack: r.get(1)?,
        release: r.get(2)?,
        instance: r.get(3)?,
        stream: r.get(4)?,
        ts: r.get(5)?,
        health: r.get(6)?,
        line: r.get(7)?,
    })
}

const COLS: &str = "id, stack, release, instance, stream, ts, health, line";

/// Whether the id range `after < id <= upto` is dense for `wanted` lines (at most 4 rows
/// a line: the stack's own rows, little interleaved with other stacks'), so it is read
/// as a range of the table itself (rows are stored by id) rather than through the
/// `(stack, id)` index, which costs a table lookup a row.
fn dense_range(after: i64, upto: i64, wanted: i64) -> bool {
    upto != i64::MAX && upto.saturating_sub(after) <= wanted.saturating_mul(4)
}

/// Whether `line` is a request for the health check's `path`, the rule behind the
/// `health` column: the line names `GET` and holds `path` as a whole token, bounded on the
/// left by the start, a space, `"`, `'` or `=` and on the right by the end, a space, `"`,
/// `'`, `,` or `?`. This matches the common access-log formats (Common/Combined Log
/// Format, Python's `http.server`, nginx, JSON with `"path":"/up"`). Limits: an app that
/// logs requests without the path or the method is never matched; a real client's `GET`
/// of the health path is hidden too; with `path = "/"` every `GET /` is a health line.
pub fn is_health_line(line: &str, path: &str) -> bool {
    if path.is_empty() || !line.contains("GET") {
        return false;
    }
    let bytes = line.as_bytes();
    let mut from = 0;
    while let Some(i) = line[from..].find(path) {
        let at = from + i;
        let end = at + path.len();
        let left_ok = at == 0 || matches!(bytes[at - 1], b' ' | b'"' | b'\'' | b'=' | b'\t');
        let right_ok =
            end == bytes.len() || matches!(bytes[end], b' ' | b'"' | b'\'' | b',' | b'?' | b'\t');
        if left_ok && right_ok {
            return true;
        }
        from = at + 1;
        while !line.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

impl Store {
    /// Append runtime log lines in one transaction (their `id` is assigned here).
    pub fn append_runtime_logs(&mut self, lines: &[RuntimeLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let tx = self.conn_mut().transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO runtime_logs (stack, release, instance, stream, ts, health, line) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for l in lines {
                st.execute(params![
                    l.stack, l.release, l.instance, l.stream, l.ts, l.health, l.line
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Number of stored runtime log lines of `stack`.
    pub fn runtime_log_len(&self, stack: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COUNT(*) FROM runtime_logs WHERE stack = ?1",
            [stack],
            |r| r.get(0),
        )?)
    }

    /// The newest id of `stack`'s runtime log (0 when it has none): an index seek.
    pub fn runtime_log_last_id(&self, stack: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(MAX(id), 0) FROM runtime_logs WHERE stack = ?1",
            [stack],
            |r| r.get(0),
        )?)
    }

    /// Delete the oldest lines of `stack` so that at most `keep` remain; how many went.
    pub fn trim_runtime_logs(&self, stack: &str, keep: i64) -> Result<usize> {
        let cut: Option<i64> = self
            .conn()
            .query_row(
                "SELECT id FROM runtime_logs WHERE stack = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                params![stack, keep.max(0)],
                |r| r.get(0),
            )
            .optional()?;
        let Some(cut) = cut else {
            return Ok(0);
        };
        Ok(self.conn().execute(
            "DELETE FROM runtime_logs WHERE stack = ?1 AND id <= ?2",
            params![stack, cut],
        )?)
    }

    /// The ids of the lines of `stack` passing `filter` with `id > after`, in order (the
    /// console's row index; 8 bytes a line).
    pub fn runtime_log_ids(&self, stack: &str, f: &RuntimeFilter, after: i64) -> Result<Vec<i64>> {
        let sql = format!("SELECT id FROM runtime_logs WHERE {WHERE} AND id > ?6 ORDER BY id");
        let mut st = self.conn().prepare_cached(&sql)?;
        let rows = st
            .query_map(
                params![stack, f.release, f.instance, f.hide_health, f.since, after],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(rows)
    }

    /// At most `limit` lines of `stack` passing `filter` with `after < id <= upto`, in order.
    ///
    /// A dense id range (`dense_range`) is read as a range of the table itself, else
    /// through the `(stack, id)` index.
    pub fn runtime_logs(
        &self,
        stack: &str,
        f: &RuntimeFilter,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<RuntimeLine>> {
        let table = if dense_range(after, upto, limit) {
            "runtime_logs NOT INDEXED"
        } else {
            "runtime_logs"
        };
        self.filtered_range(COLS, table, stack, f, (after, upto, limit), row)
    }

    /// `SELECT cols FROM table` for the lines of `stack` passing `f` with
    /// `after < id <= upto` (at most `limit`, the tuple's order), in id order, each row
    /// mapped by `map`: the one filtered range query of [`Store::runtime_logs`] and
    /// [`Store::runtime_log_window`].
    fn filtered_range<T>(
        &self,
        cols: &str,
        table: &str,
        stack: &str,
        f: &RuntimeFilter,
        (after, upto, limit): (i64, i64, i64),
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let sql = format!(
            "SELECT {cols} FROM {table} WHERE {WHERE} AND id > ?6 AND id <= ?7 \
             ORDER BY id LIMIT ?8"
        );
        let mut st = self.conn().prepare_cached(&sql)?;
        let p = params![
            stack,
            f.release,
            f.instance,
            f.hide_health,
            f.since,
            after,
            upto,
            limit
        ];
        let rows = st.query_map(p, map)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The lines for the console's Logs pane between two ids of its row index, in order,
    /// as it shows them: `(id, instance, stream, HH:MM:SS.mmm, text)`; `wanted` is how
    /// many ids the caller holds in `after < id <= upto`.
    ///
    /// When the range is dense (`dense_range`) it is read unfiltered as a
    /// plain range of the table (rows are stored by id) and the caller skips the rows
    /// whose ids it does not hold; else `filter` is applied through the `(stack, id)`
    /// index. Either way only the five shown columns are read.
    pub fn runtime_log_window(
        &self,
        stack: &str,
        f: &RuntimeFilter,
        after: i64,
        upto: i64,
        wanted: i64,
    ) -> Result<Vec<WindowLine>> {
        const SHOWN: &str = "id, instance, stream, substr(ts, 12, 12), line";
        let map = |r: &Row<'_>| {
            Ok(WindowLine {
                id: r.get(0)?,
                instance: r.get(1)?,
                stream: r.get(2)?,
                time: r.get(3)?,
                line: r.get(4)?,
            })
        };
        if !dense_range(after, upto, wanted) {
            return self.filtered_range(
                SHOWN,
                "runtime_logs",
                stack,
                f,
                (after, upto, wanted),
                map,
            );
        }
        let sql = format!(
            "SELECT {SHOWN} FROM runtime_logs NOT INDEXED \
             WHERE id > ?2 AND id <= ?3 AND stack = ?1 ORDER BY id"
        );
        let mut st = self.conn().prepare_cached(&sql)?;
        let rows = st.query_map(params![stack, after, upto], map)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The last `n` lines of `stack` passing `filter`, in order.
    pub fn runtime_log_tail(
        &self,
        stack: &str,
        f: &RuntimeFilter,
        n: i64,
    ) -> Result<Vec<RuntimeLine>> {
        let sql =
            format!("SELECT {COLS} FROM runtime_logs WHERE {WHERE} ORDER BY id DESC LIMIT ?6");
        let mut st = self.conn().prepare_cached(&sql)?;
        let mut rows = st
            .query_map(
                params![stack, f.release, f.instance, f.hide_health, f.since, n],
                row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.reverse();
        Ok(rows)
    }

    /// The id of the first line of `stack` passing `filter` that contains `needle`
    /// (case-sensitive), at or after the id `from` (`forward`) or at or before it.
    pub fn find_runtime_log(
        &self,
        stack: &str,
        f: &RuntimeFilter,
        from: i64,
        needle: &str,
        forward: bool,
    ) -> Result<Option<i64>> {
        let sql = if forward {
            format!(
                "SELECT id FROM runtime_logs WHERE {WHERE} AND id >= ?6 AND instr(line, ?7) > 0 \
                 ORDER BY id LIMIT 1"
            )
        } else {
            format!(
                "SELECT id FROM runtime_logs WHERE {WHERE} AND id <= ?6 AND instr(line, ?7) > 0 \
                 ORDER BY id DESC LIMIT 1"
            )
        };
        Ok(self
            .conn()
            .query_row(
                &sql,
                params![
                    stack,
                    f.release,
                    f.instance,
                    f.hide_health,
                    f.since,
                    from,
                    needle
                ],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(stack: &str, release: i64, instance: &str, text: &str) -> RuntimeLine {
        RuntimeLine {
            id: 0,
            stack: stack.into(),
            release,
            instance: instance.into(),
            stream: "stderr".into(),
            ts: crate::store::now_rfc3339(),
            health: is_health_line(text, "/up"),
            line: text.into(),
        }
    }

    #[test]
    fn health_rule_matches_access_logs_only() {
        let hit = [
            r#"127.0.0.1 - - [02/Dec/2026 05:00:00] "GET /up HTTP/1.1" 200 -"#,
            r#"{"method":"GET","path":"/up","status":200}"#,
            "GET /up?probe=1 200 0.3ms",
            "method=GET path=/up status=200",
        ];
        for l in hit {
            assert!(is_health_line(l, "/up"), "{l}");
        }
        let miss = [
            r#"127.0.0.1 - - [02/Dec/2026 05:00:00] "GET /upload HTTP/1.1" 200 -"#,
            r#""POST /up HTTP/1.1" 200"#,
            "GET /api/up2 200",
            "listening on /up",
            "",
        ];
        for l in miss {
            assert!(!is_health_line(l, "/up"), "{l}");
        }
        assert!(!is_health_line("GET /up", ""));
        assert!(is_health_line("é GET é /up", "/up"));
    }

    #[test]
    fn filters_pages_and_trims_per_stack() {
        let mut s = Store::open_in_memory().unwrap();
        let mut lines = Vec::new();
        for i in 0..10 {
            let rel = 1 + i % 2;
            let text = if i % 3 == 0 {
                "\"GET /up HTTP/1.1\" 200".to_string()
            } else {
                format!("request {i}")
            };
            lines.push(line("web", rel, &format!("web-r{rel}-{}", rel), &text));
            lines.push(line("db", 1, "db-r1-1", &format!("db {i}")));
        }
        s.append_runtime_logs(&lines).unwrap();
        assert_eq!(s.runtime_log_len("web").unwrap(), 10);
        assert_eq!(s.runtime_log_last_id("nosuch").unwrap(), 0);
        assert_eq!(s.runtime_log_last_id("web").unwrap(), 19);
        let all = RuntimeFilter::default();
        let ids = s.runtime_log_ids("web", &all, 0).unwrap();
        assert_eq!(ids.len(), 10);
        let hide = RuntimeFilter {
            hide_health: true,
            ..Default::default()
        };
        assert_eq!(s.runtime_log_ids("web", &hide, 0).unwrap().len(), 6);
        let r2 = RuntimeFilter {
            release: Some(2),
            ..Default::default()
        };
        let rows = s.runtime_logs("web", &r2, 0, i64::MAX, 100).unwrap();
        assert_eq!(rows.len(), 5);
        assert!(rows.iter().all(|r| r.release == 2 && r.stack == "web"));
        let one = RuntimeFilter {
            instance: Some("web-r1-1".into()),
            ..Default::default()
        };
        assert_eq!(s.runtime_log_ids("web", &one, 0).unwrap().len(), 5);
        // Keyset paging: after the 3rd id, 2 lines.
        let page = s.runtime_logs("web", &all, ids[2], i64::MAX, 2).unwrap();
        assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), ids[3..5]);
        // A dense range (read from the table by id) skips the other stack's lines too.
        let dense = s.runtime_logs("web", &all, ids[2], ids[4], 10).unwrap();
        assert_eq!(dense.iter().map(|r| r.id).collect::<Vec<_>>(), ids[3..5]);
        let dense = s.runtime_logs("web", &hide, ids[2], ids[6], 10).unwrap();
        assert!(dense.iter().all(|r| !r.health && r.stack == "web"));
        assert_eq!(dense.len(), 2, "rows 3..=6 less the health lines 3 and 6");
        // The Logs pane's window: dense ranges come unfiltered (the caller skips), only
        // this stack's rows, with the shown columns; a sparse one is filtered.
        let win = s
            .runtime_log_window("web", &hide, ids[2], ids[6], 3)
            .unwrap();
        assert_eq!(win.iter().map(|r| r.id).collect::<Vec<_>>(), ids[3..7]);
        assert_eq!(win[0].instance, "web-r2-2");
        assert_eq!(win[0].time.len(), 12, "HH:MM:SS.mmm: {:?}", win[0].time);
        let sparse = s.runtime_log_window("web", &r2, 0, ids[9], 1).unwrap();
        assert_eq!(sparse.len(), 1);
        assert!(sparse[0].instance.starts_with("web-r2"));
        let tail = s.runtime_log_tail("web", &all, 3).unwrap();
        assert_eq!(tail.len(), 3);
        assert_eq!(tail[1].line, "request 8");
        assert_eq!(
            s.find_runtime_log("web", &all, 0, "request 5", true)
                .unwrap(),
            Some(ids[5])
        );
        assert_eq!(
            s.find_runtime_log("web", &all, ids[4], "request 5", false)
                .unwrap(),
            None
        );
        // The cap keeps the newest lines of one stack and leaves the others alone.
        assert_eq!(s.trim_runtime_logs("web", 4).unwrap(), 6);
        assert_eq!(s.runtime_log_ids("web", &all, 0).unwrap(), ids[6..]);
        assert_eq!(s.runtime_log_len("db").unwrap(), 10);
        assert_eq!(s.trim_runtime_logs("web", 4).unwrap(), 0);
    }
}
