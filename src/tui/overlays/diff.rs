//! The diff view (`D`): what a build changes against the live release (Builds, and the
//! other panes with the newest build), or what a release changed against the one before it
//! (Releases), read off the UI task ([`super::super::msg::Effect::Diff`]) and shown in the
//! Detail overlay with the same text as `drover diff`.

use crate::diff::Ref;
use crate::paths::Paths;
use crate::store::builds::BuildStatus;
use crate::tui::msg::Effect;
use crate::tui::state::{Focus, Pane, State};

/// `D`: decide the two sides from the pane and its selection and ask for the diff; a
/// footer message when there is nothing to compare.
pub fn ask(state: &mut State) -> Vec<Effect> {
    let Some(stack) = state.selected_stack().map(str::to_string) else {
        return Vec::new();
    };
    let live = crate::deploy::plan::Current::from_releases(&state.releases);
    let in_pane = |p: Pane| state.pane == p && state.focus == Focus::Pane;
    let sides = if in_pane(Pane::Releases) {
        let Some(pos) = state
            .releases_list
            .pick(&state.releases)
            .and_then(|r| state.releases.iter().position(|x| x.release == r.release))
        else {
            state.status = Some(format!("{stack} has no release yet"));
            return Vec::new();
        };
        // Newest first: the one before is the next row.
        match state.releases.get(pos + 1) {
            Some(older) => (
                Ref::Release(older.release),
                Ref::Release(state.releases[pos].release),
            ),
            None => {
                state.status = Some(format!(
                    "release #{} is {stack}'s first: nothing before it to compare",
                    state.releases[pos].release
                ));
                return Vec::new();
            }
        }
    } else {
        let picked = if in_pane(Pane::Builds) {
            state.selected_build().cloned()
        } else {
            state
                .builds
                .iter()
                .find(|b| b.status == BuildStatus::Succeeded)
                .cloned()
        };
        let Some(b) = picked.filter(|b| b.status == BuildStatus::Succeeded) else {
            state.status = Some("only a succeeded build has a manifest to compare".into());
            return Vec::new();
        };
        match live {
            Some(l) if l.build_id != b.id => (Ref::Live, Ref::Build(b.id)),
            // Nothing live, or this build is live: against the succeeded build before it.
            _ => match state
                .builds
                .iter()
                .find(|o| o.id < b.id && o.status == BuildStatus::Succeeded)
            {
                Some(o) => (Ref::Build(o.id), Ref::Build(b.id)),
                None => {
                    state.status = Some(format!(
                        "build #{} is {stack}'s first succeeded build and nothing else is \
                         live: nothing to compare",
                        b.id
                    ));
                    return Vec::new();
                }
            },
        }
    };
    state.status = Some("reading the diff…".into());
    vec![Effect::Diff {
        stack,
        a: sides.0,
        b: sides.1,
    }]
}

/// Read the diff of `a` and `b` of `stack` (image included) and render it as
/// [`crate::diff::text::render`] does for the CLI: `(title, lines)`, or the error text.
pub fn load(paths: &Paths, stack: &str, a: Ref, b: Ref) -> Result<(String, Vec<String>), String> {
    let store = crate::store::Store::open(&paths.database()).map_err(|e| format!("{e:#}"))?;
    let side = |r| crate::diff::resolve(&store, stack, r).map_err(|e| e.to_string());
    let (sa, sb) = (side(a)?, side(b)?);
    let title = format!("Diff {stack}: build #{} -> #{}", sa.build, sb.build);
    let d = crate::diff::diff(&store, stack, sa, sb, true).map_err(|e| format!("{e:#}"))?;
    let lines = crate::diff::text::render(&d)
        .lines()
        .map(str::to_string)
        .collect();
    Ok((title, lines))
}
