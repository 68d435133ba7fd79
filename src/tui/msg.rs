//! The console's message and effect types: what happened ([`Msg`], [`JobMsg`]) goes into
//! [`super::update::update`]; the I/O it asks for ([`Effect`]) comes back to the app loop in
//! [`super`].

use chrono::{DateTime, Utc};
use crossterm::event::KeyEvent;

use crate::deploy::api::{AgentError, DeployRequest};
use crate::jobs::{BuildEvent, CancelToken};
use crate::store::builds::BuildStatus;

use super::state::{AgentView, StackRow};

/// Why a background job of the console failed. Its text (`Display`) is what the footer,
/// the Jobs overlay and a job's Detail show: the same words as the CLI's for the same
/// failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The stack file does not load: its diagnostics, on one line.
    #[error("{}", .0.one_line())]
    Stack(crate::stack::Diagnostics),
    /// The config file does not load: its problems, as [`crate::config::load_text`] joins
    /// them.
    #[error("{0}")]
    Config(String),
    /// The agent refused the deploy or rollback, or the release did not go live.
    #[error("{0}")]
    Agent(#[from] AgentError),
    /// The operation failed: its error with its causes (`{:#}`).
    #[error("{0:#}")]
    Failed(std::sync::Arc<anyhow::Error>),
    /// An update check ran on the previous indexes because refreshing some failed: the
    /// check's summary line and each refresh error.
    #[error(
        "{summary}, but refreshing failed (the previous index was used): {}",
        .errors.join("; ")
    )]
    Refresh {
        /// The check's summary line.
        summary: String,
        /// What failed to refresh, one per index.
        errors: Vec<String>,
    },
    /// The job's task panicked: the panic's message.
    #[error("the job panicked: {0}")]
    Panicked(String),
    /// The job's task was stopped before it ended (the runtime shut down).
    #[error("the job was stopped: {0}")]
    Stopped(String),
}

impl From<anyhow::Error> for JobError {
    fn from(e: anyhow::Error) -> Self {
        JobError::Failed(std::sync::Arc::new(e))
    }
}

/// What a background load of the Stacks list brings ([`super::data::spawn_load_stacks`]).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The Stacks list.
    pub rows: Vec<StackRow>,
    /// The stack-file problems as text.
    pub problems: Vec<String>,
    /// The panes of the stack selected when the load started.
    pub stack: Option<Box<super::data::StackData>>,
}

/// Why a background load of the Stacks list failed; its text is the footer's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The store could not be read: the error with its causes.
    #[error("cannot read the store: {0:#}")]
    Store(std::sync::Arc<anyhow::Error>),
    /// The load's thread panicked.
    #[error("the stacks load panicked")]
    Panicked,
}

/// What a load of the Stacks list brings: the rows, problems and selected stack, or why not.
pub type StacksLoad = Result<Loaded, LoadError>;

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// Progress of a background job.
    Job(JobMsg),
    /// The clock moved.
    Tick(DateTime<Utc>),
    /// The agent's status was polled: running, not running, or refusing this user.
    Agent(AgentView),
    /// The Stacks list, read off the UI task ([`super::data::spawn_load_stacks`]): the
    /// rows and the stack-file problems as text, or why the store could not be read.
    Stacks(StacksLoad),
    /// A text read off the UI task for the Detail overlay ([`Effect::Diff`],
    /// [`Effect::Audit`]): its title and lines, or why it could not be read.
    Detail(Result<(String, Vec<String>), String>),
    /// `:new` wrote a stack from a template ([`Effect::NewStack`]): its name and what was
    /// written, or why nothing was.
    StackCreated(Result<(String, String), String>),
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
    /// The job ended: its status, or why it could not run (`Err`, also for a panicked
    /// task).
    Done {
        /// Job number.
        job: u64,
        /// Build status and error text, or why the job could not run.
        outcome: Result<(BuildStatus, Option<String>), JobError>,
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
        outcome: Result<String, JobError>,
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
    /// Stop, start, scale or restart (`drover stop|start|scale|restart`) as job `job`.
    Lifecycle {
        /// Job number.
        job: u64,
        /// The request (`by` is filled in by the job).
        req: crate::deploy::api::LifecycleRequest,
    },
    /// Reload stacks, builds and the manifest from the store.
    Reload,
    /// Write the stack `name` from `template` (`drover new NAME --template T`, with its app
    /// skeleton) and validate it, off the UI task; the outcome comes back as
    /// [`Msg::StackCreated`].
    NewStack {
        /// The new stack's name.
        name: String,
        /// The template's name.
        template: String,
    },
    /// Compare `a` with `b` of `stack` ([`crate::diff::diff`], image included) off the UI
    /// task; the text comes back as [`Msg::Diff`].
    Diff {
        /// Stack name.
        stack: String,
        /// The side compared from.
        a: crate::diff::Ref,
        /// The side compared to.
        b: crate::diff::Ref,
    },
    /// Read release `release` of `stack` in detail off the UI task; it comes back as
    /// [`Msg::Detail`].
    ReleaseDetail {
        /// Stack name.
        stack: String,
        /// Release number.
        release: i64,
    },
    /// Read the audit records of `stack` off the UI task; they come back as
    /// [`Msg::Detail`].
    Audit {
        /// Stack name.
        stack: String,
    },
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
