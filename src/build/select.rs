//! Which build a command acts on, shared by both front ends: open the store (recovering
//! builds whose process died) and resolve "build N of STACK, else the newest one" with the
//! checks a command needs (a manifest, an image archive on disk).
//!
//! One place decides what is the operator's mistake (a build id that does not exist or
//! belongs to another stack: [`PickError::is_bad_input`]) and what is a failed operation
//! (nothing built yet, a build that failed and so has no manifest or image, an image pruned
//! or missing on disk), so every command answers the same case with the same message and
//! exit code (`drover manifest` of a failed build always exited 1: kept, and push and
//! export now agree).

use std::path::Path;

use crate::paths::Paths;
use crate::store::builds::{BuildRecord, BuildStatus};
use crate::store::Store;

/// Open the state's store for a command that reads or writes builds: creates the state
/// directory if needed, opens `STATE/drover.db`, and marks builds left `running` by a dead
/// process `interrupted` ([`super::recover_interrupted`]).
///
/// Errors: the state directory cannot be created, the database cannot be opened or
/// migrated, or the recovery cannot write.
pub fn open_store(paths: &Paths) -> anyhow::Result<Store> {
    paths.ensure_state()?;
    let store = Store::open(&paths.database())?;
    super::recover_interrupted(paths, &store)?;
    Ok(store)
}

/// What the command needs of the build it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any build, whatever its status (e.g. `logs`); the default is the newest build.
    Any,
    /// A succeeded build with its components manifest (e.g. `manifest`, SBOM export); the
    /// default is the newest succeeded build.
    Manifest,
    /// A succeeded build with an image digest (e.g. `export`, which references the image by
    /// digest and does not read the archive).
    Image,
    /// A succeeded build whose image archive is still on disk (e.g. `push`).
    ImageArchive,
}

/// Why no build could be picked. Messages name the build, the stack and the command to
/// run next.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    /// `--build N` names no build at all.
    #[error("there is no build {id}; `drover builds {stack}` lists them")]
    NoSuchBuild {
        /// The stack asked for.
        stack: String,
        /// The build id asked for.
        id: i64,
    },
    /// `--build N` names a build of another stack.
    #[error("build {id} belongs to stack {owner}, not {stack}")]
    OtherStack {
        /// The stack asked for.
        stack: String,
        /// The build id asked for.
        id: i64,
        /// The stack the build belongs to.
        owner: String,
    },
    /// No build (or no succeeded build) exists yet and none was named.
    #[error("{stack} has no {}build yet; run `drover build {stack}`", if *.succeeded { "succeeded " } else { "" })]
    NoBuild {
        /// The stack asked for.
        stack: String,
        /// Whether a succeeded build was needed.
        succeeded: bool,
    },
    /// The named build did not succeed, so it has no manifest or image.
    #[error("build {id} of {stack} is {}, it has no {what}; `drover builds {stack}` lists the succeeded ones", status.as_str())]
    NotSucceeded {
        /// The stack.
        stack: String,
        /// The build id.
        id: i64,
        /// Its status.
        status: BuildStatus,
        /// "image" or "manifest".
        what: &'static str,
    },
    /// The build succeeded but `drover prune` removed its image.
    #[error("the image of build {id} was pruned; rebuild with `drover build {stack}`")]
    Pruned {
        /// The stack.
        stack: String,
        /// The build id.
        id: i64,
    },
    /// The store names an image archive that is not on disk.
    #[error(
        "the image archive of build {id} is missing ({path}); rebuild with `drover build {stack}`"
    )]
    ArchiveMissing {
        /// The stack.
        stack: String,
        /// The build id.
        id: i64,
        /// The archive path the store names.
        path: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl PickError {
    /// True when the operator asked for something that cannot be (exit code 2 in the
    /// CLI); false when the operation failed (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            PickError::NoSuchBuild { .. } | PickError::OtherStack { .. }
        )
    }
}

/// Build `id` of `stack`, or (when `id` is `None`) its newest build that meets `need`,
/// checked against `need`.
///
/// Errors: see [`PickError`]; a store error is [`PickError::Store`].
pub fn pick_build(
    store: &Store,
    stack: &str,
    id: Option<i64>,
    need: Need,
) -> Result<BuildRecord, PickError> {
    let b = match id {
        Some(id) => match store.build(id)? {
            Some(b) if b.stack == stack => b,
            Some(b) => {
                return Err(PickError::OtherStack {
                    stack: stack.to_string(),
                    id,
                    owner: b.stack,
                })
            }
            None => {
                return Err(PickError::NoSuchBuild {
                    stack: stack.to_string(),
                    id,
                })
            }
        },
        None => {
            let found = if need == Need::Any {
                store.latest_build(stack)?
            } else {
                store.latest_succeeded(stack)?
            };
            found.ok_or_else(|| PickError::NoBuild {
                stack: stack.to_string(),
                succeeded: need != Need::Any,
            })?
        }
    };
    if need == Need::Any {
        return Ok(b);
    }
    let wants_image = matches!(need, Need::Image | Need::ImageArchive);
    let what = if wants_image { "image" } else { "manifest" };
    if b.status != BuildStatus::Succeeded || (wants_image && b.image_digest.is_none()) {
        return Err(PickError::NotSucceeded {
            stack: stack.to_string(),
            id: b.id,
            status: b.status,
            what,
        });
    }
    if need == Need::ImageArchive {
        let Some(path) = b.image_path.clone() else {
            return Err(PickError::Pruned {
                stack: stack.to_string(),
                id: b.id,
            });
        };
        if !Path::new(&path).is_file() {
            return Err(PickError::ArchiveMissing {
                stack: stack.to_string(),
                id: b.id,
                path,
            });
        }
    }
    Ok(b)
}
