//! The console's message and effect types: what happened ([`Msg`], [`JobMsg`]) goes into
//! [`super::update::update`]; the I/O it asks for ([`Effect`]) comes back to the app loop in
//! [`super`].

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use crate::deploy::api::{AgentStatus, DeployRequest};
use crate::jobs::{BuildEvent, CancelToken};
use crate::store::builds::BuildStatus;

use super::state::StackRow;

/// What a load of the Stacks list brings: rows and stack-file problems, or the error text.
pub type StacksLoad = Result<(Vec<StackRow>, Vec<String>), String>;

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// Progress of a background job.
    Job(JobMsg),
    /// The clock moved.
    Tick(DateTime<Utc>),
    /// The agent's status was polled: `None` when no agent answers.
    Agent(Option<AgentStatus>),
    /// The Stacks list, read off the UI task ([`super::data::spawn_load_stacks`]): the
    /// rows and the stack-file problems as text, or why the store could not be read.
    Stacks(StacksLoad),
}

/// A message from a background job.
#[derive(Debug, Clone)]
pub enum JobMsg {
    /// A build event.
    Event {
        /// Job number.
        job: u64,
        /// The event.
        event: BuildEvent,
    },
    /// The job ended: its status, or an error (`Err`, also for a panicked task).
    Done {
        /// Job number.
        job: u64,
        /// Build status and error text, or why the job could not run.
        outcome: Result<(BuildStatus, Option<String>), String>,
    },
    /// A progress line of a check, deploy or rollback job.
    Line {
        /// Job number.
        job: u64,
        /// The line.
        line: String,
    },
    /// A check, deploy or rollback job ended: its summary, or the error.
    Ended {
        /// Job number.
        job: u64,
        /// Summary on success, the error (possibly several lines) on failure.
        outcome: Result<String, String>,
    },
}

/// Work for the app loop.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Run a build of `stack` as job `job`.
    StartBuild {
        /// Job number.
        job: u64,
        /// Stack name.
        stack: String,
        /// Cancels it.
        cancel: CancelToken,
        /// Move the lock to the pending updates first (`drover build --apply-updates`).
        apply_updates: bool,
    },
    /// Refresh `stack`'s lock (`drover lock STACK`, or with `update` `drover lock STACK
    /// --update`) as job `job`.
    Lock {
        /// Job number.
        job: u64,
        /// Stack name.
        stack: String,
        /// Move it to the pending updates.
        update: bool,
    },
    /// Check `stack` for updates (`drover updates STACK --refresh`) as job `job`.
    CheckUpdates {
        /// Job number.
        job: u64,
        /// Stack name.
        stack: String,
    },
    /// Deploy or roll back (`drover deploy` / `drover rollback`) as job `job`.
    Deploy {
        /// Job number.
        job: u64,
        /// The request (`by` is filled in by the job).
        req: DeployRequest,
    },
    /// Reload stacks, builds and the manifest from the store.
    Reload,
    /// Find `needle` in the viewed log from line `from`.
    SearchLog {
        /// Text to find.
        needle: String,
        /// First line to look at.
        from: usize,
        /// Direction.
        forward: bool,
    },
}
