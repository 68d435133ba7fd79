//! The six panes: each module draws its pane from [`super::state::State`].

pub mod builds;
pub mod log;
pub mod manifest;
pub mod releases;
pub mod stacks;
pub mod updates;
