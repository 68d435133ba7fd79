//! The overlays drawn over the frame: each module draws its overlay from
//! [`super::state::State`] and handles its keys (`key`, called from [`super::update`]).

pub mod confirm;
pub mod detail;
pub mod diff;
pub mod help;
pub mod jobs;
pub mod palette;
