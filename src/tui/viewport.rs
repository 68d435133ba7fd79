//! The viewport pass: before each frame, size what depends on the terminal (list offsets
//! that keep the selection on screen, the page size of page up/down, the log's height and
//! scroll, the Detail overlay's page) with the same layout [`super::render::draw`] uses,
//! so that drawing only reads the state.

use ratatui::layout::Rect;

use super::render::{builds_split, frame_areas, right_areas};
use super::state::{Pane, State};
use super::{overlays, panes};

/// Size `state`'s viewport for a frame of `area` (the terminal's size): call it after the
/// state changed and before [`super::render::draw`].
pub fn fit(state: &mut State, area: Rect) {
    let ([_, body, _], sides) = frame_areas(area, state);
    match sides {
        None => panes::log::fit(state, body),
        Some([left, right]) => {
            panes::stacks::fit(state, left);
            let [_, rest] = right_areas(right);
            match state.pane {
                Pane::Builds => {
                    let [top, bottom] = builds_split(rest, state);
                    panes::builds::fit(state, top);
                    panes::log::fit(state, bottom);
                }
                Pane::Log | Pane::Logs => panes::log::fit(state, rest),
                Pane::Manifest => panes::manifest::fit(state, rest),
                Pane::Updates => panes::updates::fit(state, rest),
                Pane::Releases => panes::releases::fit(state, rest),
            }
        }
    }
    overlays::detail::fit(state, area);
}
