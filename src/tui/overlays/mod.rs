//! The overlays drawn over the frame: each module draws its overlay from
//! [`super::state::State`].

pub mod confirm;
pub mod detail;
pub mod help;
pub mod jobs;
pub mod palette;
