//! Deploy commands: `deploy`, `rollback`, `releases`, `status`, `agent [status|stop]`.
//! They talk to the agent over its Unix socket (starting it when needed); `releases`
//! reads the store directly.

use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::json;

use super::output::{age, print_json, short_digest, table};
use super::{CliError, CliResult};
use crate::deploy::api::{self, AgentError, AgentStatus, DeployRequest};
use crate::deploy::client::AgentClient;
use crate::paths::Paths;

/// `drover agent` subcommands.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum AgentCommand {
    /// Whether the agent runs, with its PID and routes.
    Status,
    /// Stop the agent (its instances stop with it; `deploy` or `status` restarts it and
    /// restores every live release).
    Stop,
}

/// Options of `deploy` and `rollback`.
#[derive(Debug, Clone, Default)]
pub struct DeployArgs {
    /// Build to deploy.
    pub build: Option<i64>,
    /// Instances wanted.
    pub replicas: Option<usize>,
    /// Release to roll back to (`rollback` only).
    pub to: Option<i64>,
    /// Seconds to wait for health.
    pub timeout: Option<u64>,
    /// Seconds of drain grace.
    pub grace: Option<u64>,
    /// `--allow-downgrade`: deploy a build with older packages than the live release.
    pub allow_downgrade: bool,
}

/// An input error of the agent ([`AgentError::is_input`]) exits 2, any other 1.
impl From<AgentError> for CliError {
    fn from(e: AgentError) -> Self {
        if e.is_input() {
            CliError::input(e.to_string())
        } else {
            CliError::failed(e.to_string())
        }
    }
}

/// Start the agent when it is not running; true when it was started.
fn ensure(paths: &Paths) -> Result<bool, CliError> {
    let started = crate::deploy::ensure_agent(paths)?;
    if started && super::interactive() {
        eprintln!("started the drover agent");
    }
    Ok(started)
}

/// `drover deploy STACK --with-links`, its first part: deploy every stack `stack` links
/// to (directly or through other links), those it depends on first, each with its newest
/// build, one line on stderr each. Errors: a link cycle (naming it), a linked stack that
/// does not load or whose deploy fails.
pub fn deploy_links_first(paths: &Paths, stack: &str, timeout: u64, grace: u64) -> CliResult {
    fn visit(
        paths: &Paths,
        name: &str,
        path: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), CliError> {
        if order.iter().any(|o| o == name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|p| p == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name.to_string());
            return Err(CliError::input(format!(
                "[links] form a cycle: {}; a stack cannot wait for itself to be deployed",
                cycle.join(" → ")
            )));
        }
        let s = super::build::load_stack(paths, name)?;
        path.push(name.to_string());
        for linked in s.links.values() {
            visit(paths, linked, path, order)?;
        }
        path.pop();
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    visit(paths, stack, &mut Vec::new(), &mut order)?;
    order.retain(|s| s != stack);
    let store = crate::build::select::open_store(paths)?;
    let live = store.live_releases()?;
    for linked in order {
        // A linked stack already live on its newest build is left running: deploying it
        // again would restart a database for nothing.
        let newest = store.latest_succeeded(&linked)?.map(|b| b.id);
        if let Some(r) = live.iter().find(|r| r.stack == linked) {
            if Some(r.build_id) == newest {
                eprintln!(
                    "{linked} (linked): release {} already runs its newest build {}; left as is",
                    r.release, r.build_id
                );
                continue;
            }
        }
        let req = DeployRequest {
            stack: linked.clone(),
            build: None,
            replicas: None,
            rollback: false,
            to: None,
            timeout_secs: Some(timeout),
            grace_secs: Some(grace),
            by: crate::store::audit::current_user(),
        };
        let r = crate::deploy::client::deploy(paths, &req, &mut |_| {})?;
        eprintln!(
            "{linked} (linked): release {} (build {}) is live on port {}",
            r.release, r.build_id, r.route_port
        );
    }
    Ok(())
}

/// `drover deploy STACK` / `drover rollback STACK`: [`crate::deploy::client::deploy`]
/// (bad requests fail before the agent starts), then the outcome.
pub fn deploy(paths: &Paths, stack: &str, rollback: bool, a: DeployArgs, json: bool) -> CliResult {
    // A rollback works on a broken (or deleted) stack file from the definition the live
    // release was deployed with; the agent says so in the report's warnings.
    let store = crate::build::select::open_store(paths)?;
    crate::deploy::definition::load(&paths.config, &store, stack, rollback)
        .map_err(|diags| CliError::input(diags.to_string()))?;
    let req = DeployRequest {
        stack: stack.to_string(),
        build: a.build,
        replicas: a.replicas,
        rollback,
        to: a.to,
        timeout_secs: a.timeout,
        grace_secs: a.grace,
        by: crate::store::audit::current_user(),
    };
    // A downgrade is refused (deploy) or said (rollback, the emergency key) before the
    // agent starts; a request the plan rejects is reported by the deploy call below.
    if let Ok(target) = crate::deploy::plan::check(&store, &req)? {
        if let Some(d) = crate::deploy::downgrade::downgrade(&store, stack, target.build_id)? {
            if rollback || a.allow_downgrade {
                eprintln!("warning: {} ({})", d.summary(), d.examples(3));
            } else {
                return Err(CliError::input(format!(
                    "deploying build {} of {stack} is a downgrade: {} ({}). Deploy a build of \
                     the current lock, or pass --allow-downgrade to deploy it anyway",
                    d.build,
                    d.summary(),
                    d.examples(3)
                )));
            }
        }
    }
    drop(store);
    let tty = super::interactive();
    let t = Instant::now();
    // The first line says the request was accepted (always shown); the steps after it only
    // on a terminal.
    let mut accepted = false;
    let mut progress = |line: &str| {
        if json {
            return;
        }
        if !accepted {
            accepted = true;
            eprintln!("{line}");
        } else if tty {
            eprintln!("  {line}");
        }
    };
    let r = crate::deploy::client::deploy(paths, &req, &mut progress)?;
    if json {
        return print_json(&r);
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "{stack}: release {} (build {}, {}) is live on port {} with {} instance(s){}",
        r.release,
        r.build_id,
        short_digest(&r.image_digest),
        r.route_port,
        r.instances.len(),
        r.rollback_of
            .map(|n| format!(", rolled back to release {n}'s build"))
            .unwrap_or_default()
    );
    match r.unavailable_ms {
        // A recreate: the old release stopped first, and the route had none meanwhile.
        Some(ms) => println!(
            "strategy recreate: previous release {} drained and stopped first; {stack} was \
             unavailable for {:.1} s; total {:.1} s",
            r.previous_release
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            ms / 1e3,
            t.elapsed().as_secs_f64()
        ),
        None => {
            println!(
            "strategy {}: route switched in {:.2} ms; previous release {} drained in {:.0} ms; \
             total {:.1} s",
            if r.strategy.is_empty() { "blue-green" } else { r.strategy.as_str() },
            r.switch_ms,
            r.previous_release
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            r.drain_ms,
            t.elapsed().as_secs_f64()
        )
        }
    }
    if r.layers_unpacked + r.layers_cached > 0 {
        println!(
            "image unpacked in {:.0} ms: {} layer(s) unpacked, {} from the layer cache",
            r.unpack_ms, r.layers_unpacked, r.layers_cached
        );
    }
    if r.warm {
        println!("rolled back to the still-running warm instances (nothing started)");
    } else if let Some(why) = &r.cold_reason {
        println!("started new instances: the warm path was not taken ({why})");
    }
    if r.kept_warm > 0 {
        println!(
            "release {} kept warm: {} instance(s) running unrouted for an immediate rollback",
            r.previous_release
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            r.kept_warm
        );
    }
    if let Some(w) = &r.watching {
        println!("watching {w} (`drover metrics {stack}`, `drover audit {stack}`)");
    }
    Ok(())
}

/// `drover releases STACK`.
/// `drover releases STACK --release N`: one release in detail
/// ([`crate::deploy::detail::ReleaseDetail`]).
pub fn release_detail(paths: &Paths, stack: &str, release: i64, json: bool) -> CliResult {
    use crate::deploy::detail::{self, DetailError};
    let store = super::query::open_store(paths)?;
    super::query::known_stack(paths, &store, stack)?;
    let d = detail::read(&store, stack, release).map_err(|e| match e {
        DetailError::NoRelease { .. } => CliError::input(e.to_string()),
        DetailError::Store(e) => CliError::failed(format!("{e:#}")),
    })?;
    if json {
        return print_json(&d);
    }
    for l in d.lines() {
        println!("{l}");
    }
    Ok(())
}

pub fn releases(paths: &Paths, stack: &str, json: bool) -> CliResult {
    // The history of a stack whose file broke or is gone stays readable.
    let store = super::query::open_store(paths)?;
    super::query::known_stack(paths, &store, stack)?;
    let rows = store.releases(stack)?;
    if json {
        let mut v: Vec<serde_json::Value> = Vec::new();
        for r in &rows {
            let verification = store.verification(r.build_id)?;
            v.push(json!({
                    "release": r.release,
                    "build_id": r.build_id,
                    "image_digest": r.image_digest,
                    "status": r.status,
                    "created_at": r.created_at,
                    "by": r.by,
                    "replicas": r.replicas,
                    "rollback_of": r.rollback_of,
                    "error": r.error,
                    "verification": verification,
            }));
        }
        return print_json(&v);
    }
    if rows.is_empty() {
        println!("{stack} has no releases yet: run `drover deploy {stack}`");
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.release.to_string(),
                r.status.to_string(),
                r.build_id.to_string(),
                short_digest(&r.image_digest),
                age(&r.created_at),
                r.by.clone(),
                r.rollback_of
                    .map(|n| format!("rollback to {n}"))
                    .or_else(|| r.error.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["RELEASE", "STATUS", "BUILD", "IMAGE", "CREATED", "BY", "NOTE"],
            &cells
        )
    );
    Ok(())
}

/// `drover status`: starts the agent if needed (which restores every live release) and
/// then waits, at most [`api::DEFAULT_HEALTH_TIMEOUT`], until the restored releases serve
/// (their instances passed their health checks), so what it prints is serving.
pub fn status(paths: &Paths, json: bool) -> CliResult {
    if ensure(paths)? {
        let (_, waiting) = crate::deploy::client::wait_serving(paths, api::DEFAULT_HEALTH_TIMEOUT)
            .map_err(|e| CliError::failed(e.to_string()))?;
        if !waiting.is_empty() {
            eprintln!(
                "warning: {} not serving yet {}s after the agent started; run `drover status` \
                 again, and see {} and `drover releases STACK`",
                waiting.join(", "),
                api::DEFAULT_HEALTH_TIMEOUT.as_secs(),
                paths.logs().display()
            );
        }
    }
    let s = AgentClient::new(paths).status(None)?;
    if json {
        // Through a Value, as before: its keys print sorted.
        return print_json(
            &serde_json::to_value(&s.stacks).map_err(|e| CliError::failed(e.to_string()))?,
        );
    }
    print_status(&s);
    Ok(())
}

fn print_status(s: &AgentStatus) {
    if s.stacks.is_empty() {
        println!("nothing deployed yet: run `drover deploy STACK`");
    }
    for st in &s.stacks {
        println!(
            "{}: route :{}  live release {}  {} of {} instance(s) healthy{}",
            st.stack,
            st.route_port,
            st.live_release
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            st.instances
                .iter()
                .filter(|i| i.healthy && Some(i.release) == st.live_release)
                .count(),
            st.replicas,
            st.deploying
                .as_ref()
                .map(|d| format!("  ({d})"))
                .unwrap_or_default()
        );
        let cells: Vec<Vec<String>> = st
            .instances
            .iter()
            .map(|i| {
                vec![
                    i.id.clone(),
                    i.release.to_string(),
                    i.state.to_string(),
                    i.pid.map(|p| p.to_string()).unwrap_or_default(),
                    i.port.to_string(),
                    i.in_flight.to_string(),
                    i.last_check.clone(),
                ]
            })
            .collect();
        if !cells.is_empty() {
            print!(
                "{}",
                table(
                    &[
                        "  INSTANCE",
                        "RELEASE",
                        "STATE",
                        "PID",
                        "PORT",
                        "IN-FLIGHT",
                        "LAST CHECK"
                    ],
                    &cells
                        .into_iter()
                        .map(|mut c| {
                            c[0] = format!("  {}", c[0]);
                            c
                        })
                        .collect::<Vec<_>>()
                )
            );
        }
    }
}

/// `drover agent`, `drover agent status`, `drover agent stop`.
pub fn agent(paths: &Paths, cmd: Option<AgentCommand>, json: bool) -> CliResult {
    let client = AgentClient::new(paths);
    let sock = client.socket();
    match cmd {
        None => Ok(crate::deploy::agent::run(paths.clone())?),
        Some(AgentCommand::Status) => {
            match client.status(Some(Duration::from_secs(5))) {
                Ok(s) => {
                    if json {
                        return print_json(
                            &json!({"running": true, "pid": s.pid, "started_at": s.started_at, "socket": sock}),
                        );
                    }
                    println!(
                        "agent running: pid {}, started {}, socket {}",
                        s.pid,
                        s.started_at,
                        sock.display()
                    );
                    print_status(&s);
                    Ok(())
                }
                // An answer that is not a status is a failure, not a stopped agent.
                Err(AgentError::Unexpected(m) | AgentError::PermissionDenied(m)) => {
                    Err(CliError::failed(m))
                }
                Err(_) => {
                    if json {
                        print_json(&json!({"running": false, "socket": sock}))?;
                    } else {
                        println!("agent not running (no answer on {})", sock.display());
                    }
                    Err(CliError::failed(""))
                }
            }
        }
        Some(AgentCommand::Stop) => {
            let pid = std::fs::read_to_string(paths.agent_pid())
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok());
            match client.stop(Some(Duration::from_secs(5))) {
                Ok(()) => {}
                // Not "not running": an agent may well run, as another user.
                Err(AgentError::PermissionDenied(m)) => return Err(CliError::failed(m)),
                Err(_) => {
                    println!("agent not running");
                    return Ok(());
                }
            }
            // Wait for the process to be gone (its instances stop with it).
            let deadline = Instant::now() + Duration::from_secs(15);
            if let Some(pid) = pid {
                // SAFETY: kill with signal 0 only probes for existence.
                while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            println!("agent stopped");
            Ok(())
        }
    }
}
