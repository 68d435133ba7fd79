//! Background jobs and their typed progress events.
//!
//! Long work (a build today; update checks and deploys later) reports through a
//! [`BuildEvent`] callback. The CLI prints or draws progress bars from them, the TUI turns
//! them into channel messages, and the store has already recorded every log line when an
//! event is emitted.

use serde::Serialize;

/// The steps of a build, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Loading and checking the stack.
    Prepare,
    /// The base layer: OS + system packages (mmdebstrap), or the cache.
    Base,
    /// The deps (framework) layer: `[scripts].deps` over the `[deps]` files, or the cache.
    Deps,
    /// The app layer: app files, the build script in the sandbox.
    App,
    /// The components manifest from the dpkg database.
    Manifest,
    /// Layer blobs and the OCI archive.
    Image,
    /// The bootable disk image (`[vm] enabled` or `--vm`): boot layer, disk, qcow2.
    Vm,
    /// Moving the image into place and recording the result.
    Publish,
}

impl Step {
    /// Lowercase name (`base`, `app`, …), as stored in `builds.failed_step`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Base => "base",
            Step::Deps => "deps",
            Step::App => "app",
            Step::Manifest => "manifest",
            Step::Image => "image",
            Step::Vm => "vm",
            Step::Publish => "publish",
        }
    }
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// A child's standard output.
    Stdout,
    /// A child's standard error.
    Stderr,
    /// drover's own messages.
    Drover,
}

impl Stream {
    /// The word stored in `build_logs.stream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Drover => "drover",
        }
    }
}

/// A progress event of one build.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum BuildEvent {
    /// The build row exists.
    Started {
        /// Build id.
        build_id: i64,
        /// Stack name.
        stack: String,
    },
    /// A step begins.
    StepStarted {
        /// Build id.
        build_id: i64,
        /// The step.
        step: Step,
    },
    /// The base key is known; `cached` tells whether mmdebstrap will be skipped.
    Base {
        /// Build id.
        build_id: i64,
        /// Hex SHA-256 of the base inputs.
        key: String,
        /// Reused from the cache.
        cached: bool,
    },
    /// One log line (already stored).
    Log {
        /// Build id.
        build_id: i64,
        /// Sequence number within the build.
        seq: i64,
        /// Source stream.
        stream: Stream,
        /// The line.
        line: String,
    },
    /// The build ended.
    Finished {
        /// Build id.
        build_id: i64,
        /// Whether it succeeded.
        succeeded: bool,
    },
}

/// A cancellation flag shared between a job and whoever may stop it (the TUI's `x`, the
/// CLI's Ctrl-C handler). Cheap to clone; all clones see the same flag.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CancelToken {
    /// A new, not yet cancelled token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask the job to stop. Idempotent.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The raw flag, for `signal_hook::flag::register` (a signal sets it).
    pub fn flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.0.clone()
    }
}

/// The error a job returns when it stopped because its [`CancelToken`] was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled by the operator")
    }
}

impl std::error::Error for Cancelled {}
