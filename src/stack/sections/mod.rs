//! One validator per section of a stack file, each reading its table through the
//! [`Checker`](super::toml_check::Checker) and recording every problem it finds.

pub(super) mod app;
pub(super) mod base;
pub(super) mod data;
pub(super) mod deploy;
pub(super) mod deps;
pub(super) mod health;
pub(super) mod image_path;
pub(super) mod links;
pub(super) mod risks;
pub(super) mod scripts;
pub(super) mod top;
pub(super) mod track;
pub(super) mod vm;
