//! `drover stop|start|scale|restart STACK`: one stack's live release without a new
//! release ([`crate::deploy::client::lifecycle`], the same call the console makes).

use super::output::print_json;
use super::CliResult;
use crate::deploy::api::{LifecycleAction, LifecycleRequest};
use crate::paths::Paths;

/// Run one lifecycle action and print its outcome (or the report as JSON).
pub fn run(
    paths: &Paths,
    stack: &str,
    action: LifecycleAction,
    replicas: Option<usize>,
    grace: u64,
    json: bool,
) -> CliResult {
    let req = LifecycleRequest {
        stack: stack.to_string(),
        action,
        replicas,
        grace_secs: Some(grace),
        by: crate::store::audit::current_user(),
    };
    let r = crate::deploy::client::lifecycle(paths, &req)?;
    if json {
        return print_json(&r);
    }
    let list = |ids: &[String]| {
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    match action {
        LifecycleAction::Stop => {
            let tcp = crate::stack::load_stack(&paths.config, stack)
                .is_ok_and(|s| s.protocol == crate::stack::Protocol::Tcp);
            println!(
                "{stack}: stopped; release {} kept (drained and stopped: {}); the route {} \
                 until `drover start {stack}`",
                r.release,
                list(&r.stopped_instances),
                if tcp {
                    "closes new connections at once"
                } else {
                    "answers 503"
                }
            )
        }
        _ => println!(
            "{stack}: release {} serves with {} of {} instance(s): {}",
            r.release,
            r.instances.len(),
            r.replicas,
            list(&r.instances)
        ),
    }
    if action != LifecycleAction::Stop {
        if !r.started.is_empty() {
            println!("started: {}", list(&r.started));
        }
        if !r.stopped_instances.is_empty() {
            println!("drained and stopped: {}", list(&r.stopped_instances));
        }
    }
    println!("took {:.1} s", r.total_ms / 1e3);
    Ok(())
}
