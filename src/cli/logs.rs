//! `drover logs STACK --runtime`: a stack's runtime log (what its instances printed), from
//! the store, filtered by release, instance, age and health-check lines, optionally
//! followed.

use std::time::Duration;

use super::output::print_json;
use super::{CliError, CliResult};
use crate::paths::Paths;
use crate::store::runtime_logs::{RuntimeFilter, RuntimeLine};

/// How often `--follow` asks the store for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// The options of `drover logs --runtime`.
#[derive(Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// `--release N`.
    pub release: Option<i64>,
    /// `--instance ID`.
    pub instance: Option<String>,
    /// `--since 10m` (humantime duration, back from now).
    pub since: Option<String>,
    /// `--hide-health`.
    pub hide_health: bool,
    /// `--follow`.
    pub follow: bool,
}

/// The RFC 3339 time `since` (a humantime duration such as `10m`) before now.
///
/// Errors: `since` is not a duration; the message names it and gives examples.
pub fn since_time(since: &str) -> Result<String, CliError> {
    let d = humantime::parse_duration(since).map_err(|e| {
        CliError::input(format!(
            "--since `{since}` is not a duration ({e}); use e.g. `30s`, `10m`, `2h` or `1day`"
        ))
    })?;
    let d = chrono::Duration::from_std(d)
        .map_err(|_| CliError::input(format!("--since `{since}` is too long")))?;
    let at = chrono::Utc::now()
        .checked_sub_signed(d)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn text_line(l: &RuntimeLine) -> String {
    let ts = l.ts.get(11..23).unwrap_or(&l.ts);
    // Stored lines are sanitised when written; sanitise again: the store is a file anyone
    // with the state directory could have edited.
    format!(
        "{ts} {} {:<6} {}\n",
        l.instance,
        l.stream,
        crate::text::sanitize_for_terminal(&l.line)
    )
}

/// Print the runtime log of `name`: text lines `TIME INSTANCE STREAM text`, or with
/// `json` an array of [`RuntimeLine`] (with `--follow`: one object a line, JSON Lines).
pub fn runtime(paths: &Paths, name: &str, args: &RuntimeArgs, json: bool) -> CliResult {
    let store = super::query::open_store(paths)?;
    let filter = RuntimeFilter {
        release: args.release,
        instance: args.instance.clone(),
        hide_health: args.hide_health,
        since: args.since.as_deref().map(since_time).transpose()?,
    };
    if store.runtime_log_len(name)? == 0 && !args.follow {
        // Unknown names are an error; a known stack that printed nothing is empty output.
        super::query::known_stack(paths, &store, name)?;
    }
    let mut after = 0;
    let mut all = Vec::new();
    loop {
        let chunk = store.runtime_logs(name, &filter, after, i64::MAX, 10_000)?;
        if let Some(l) = chunk.last() {
            after = l.id;
        }
        if chunk.is_empty() {
            if !args.follow {
                break;
            }
            std::thread::sleep(FOLLOW_POLL);
            continue;
        }
        if json && !args.follow {
            all.extend(chunk);
        } else if json {
            let mut out = String::new();
            for l in &chunk {
                out.push_str(&serde_json::to_string(l).map_err(anyhow::Error::from)?);
                out.push('\n');
            }
            print!("{out}");
        } else {
            print!("{}", chunk.iter().map(text_line).collect::<String>());
        }
        if args.follow {
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
    }
    if json {
        print_json(&all)?;
    }
    Ok(())
}
