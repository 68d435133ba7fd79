//! The confirmation overlay: what is about to happen (the text of each question), answered
//! with y or n, and the work a yes starts.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::deploy::api::DeployRequest;
use crate::deploy::plan::Target;
use crate::store::builds::BuildRecord;
use crate::store::deploys::ReleaseRecord;
use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::state::{Confirm, Focus, Job, JobState, Overlay, Pane, Pending, State, UpdateRow};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, centered};

/// Draw the confirm overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Confirm(c)) = &state.overlay else {
        return;
    };
    let w = c
        .body
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(20)
        .max(c.title.chars().count())
        .max(30) as u16
        + 4;
    let r = centered(area, w, c.body.len() as u16 + 3);
    f.render_widget(Clear, r);
    let b = block(
        Span::styled(format!(" {} ", c.title), theme.accent),
        true,
        theme,
    );
    let inner = b.inner(r);
    f.render_widget(b, r);
    let mut lines: Vec<Line> = c.body.iter().map(|l| Line::raw(l.clone())).collect();
    lines.push(Line::from(vec![
        Span::styled("y", theme.key),
        Span::raw("/enter yes   "),
        Span::styled("n", theme.key),
        Span::raw("/esc/q no"),
    ]));
    f.render_widget(Paragraph::new(lines), inner);
}

/// Keys of a confirmation: y/enter does it, n/esc/back cancels, anything else keeps asking.
pub fn key(state: &mut State, k: KeyEvent, act: Option<Action>, c: Confirm) -> Vec<Effect> {
    let yes = matches!(
        k.code,
        KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter
    );
    let no = matches!(
        k.code,
        KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc
    ) || act == Some(Action::Back);
    if yes {
        return confirmed(state, c.pending);
    }
    if !no {
        state.overlay = Some(Overlay::Confirm(c));
    } else {
        state.status = Some("cancelled: nothing was changed".into());
    }
    Vec::new()
}

/// `release #N: build #B, DIGEST`: one side of a deploy or rollback confirmation.
pub fn release_text(r: &ReleaseRecord) -> String {
    format!(
        "release #{}: build #{}, {}",
        r.release,
        r.build_id,
        crate::text::short_digest(&r.image_digest)
    )
}

/// What a yes to `p` starts: a build or rebuild job, a deploy or rollback job, the
/// cancellation of a job, or the end of the console.
fn confirmed(state: &mut State, p: Pending) -> Vec<Effect> {
    match p {
        Pending::Build(stack) => start_build(state, stack, false),
        Pending::Rebuild(stack) => start_build(state, stack, true),
        Pending::Deploy(req) => {
            let kind = if req.rollback { "rollback" } else { "deploy" };
            let job = release_job(state, kind, &req.stack);
            vec![Effect::Deploy { job, req }]
        }
        Pending::Lifecycle(req) => {
            let job = release_job(state, req.action.as_str(), &req.stack);
            vec![Effect::Lifecycle { job, req }]
        }
        Pending::CancelJob(id) => {
            if let Some(j) = state.jobs.iter().find(|j| j.id == id) {
                j.cancel.cancel();
                state.status = Some(format!("job {id}: cancelling…"));
            }
            Vec::new()
        }
        Pending::Quit => {
            for j in &state.jobs {
                if j.state == JobState::Running {
                    j.cancel.cancel();
                }
            }
            state.quit = true;
            Vec::new()
        }
    }
}

/// A new job `kind` on `stack` that acts on its releases, shown in Releases; its number.
fn release_job(state: &mut State, kind: &str, stack: &str) -> u64 {
    let (id, _) = state.new_job(kind, stack);
    state.pane = Pane::Releases;
    state.focus = Focus::Pane;
    state.status = Some(format!("job {id}: {kind} of {stack} running; J lists jobs"));
    id
}

/// Start a build (with `apply_updates`, a rebuild) of `stack` as a new job, its log
/// followed in Builds.
fn start_build(state: &mut State, stack: String, apply_updates: bool) -> Vec<Effect> {
    let kind = if apply_updates { "rebuild" } else { "build" };
    let (id, cancel) = state.new_job(kind, &stack);
    state.pane = Pane::Builds;
    state.focus = Focus::Pane;
    state.log.follow = true;
    state.status = Some(format!("job {id}: {kind}ing {stack}; J lists jobs"));
    vec![Effect::StartBuild {
        job: id,
        stack,
        cancel,
        apply_updates,
    }]
}

/// `q` / `esc` on the Stacks list, `ctrl-c`: quit now, or ask first when jobs run.
pub fn ask_quit(state: &mut State) -> Vec<Effect> {
    let n = state.running_jobs();
    if n == 0 {
        state.quit = true;
        return Vec::new();
    }
    state.overlay = Some(Overlay::Confirm(quit(n)));
    Vec::new()
}

/// The confirmation of quitting while `n` jobs still run.
pub fn quit(n: usize) -> Confirm {
    Confirm {
        title: "Quit drover?".into(),
        body: vec![
            format!("{n} job(s) still running: they are cancelled"),
            "(builds are recorded as cancelled and leave no image;".into(),
            "a deploy or rollback goes on in the agent).".into(),
        ],
        pending: Pending::Quit,
    }
}

/// The confirmation of building stack `name`, whose current image is `from`.
pub fn build(name: String, from: &str) -> Confirm {
    Confirm {
        title: format!("Build {name}?"),
        body: vec![
            format!("stack  {name}"),
            format!("from   {from}"),
            "to     a new image from the stack file: base layer (cached".into(),
            "       when unchanged), app layer, manifest, OCI archive".into(),
            "Runs in the background; the log streams into Builds.".into(),
            "Nothing that runs is changed; J lists jobs, x cancels.".into(),
        ],
        pending: Pending::Build(name),
    }
}

/// The confirmation of rebuilding stack `name` (now at `from`) so that the pending Debian
/// `updates` are installed: the first four, then how many more.
pub fn rebuild(name: String, from: &str, updates: &[&UpdateRow]) -> Confirm {
    let mut body = vec![
        format!("stack  {name}"),
        format!("from   {from}"),
        "to     a new image with the tracked suites added, so these".into(),
        "       pending updates are installed:".into(),
    ];
    const TOP: usize = 4;
    for u in updates.iter().take(TOP) {
        body.push(format!(
            "  {} {} -> {} ({} CVE{}{})",
            u.source,
            u.from,
            u.to,
            u.cves.len(),
            if u.cves.len() == 1 { "" } else { "s" },
            if u.urgency.is_empty() {
                String::new()
            } else {
                format!(", {}", u.urgency)
            }
        ));
    }
    if updates.len() > TOP {
        body.push(format!(
            "  … and {} more source package(s)",
            updates.len() - TOP
        ));
    }
    body.push("Runs in the background; the log streams into Builds.".into());
    Confirm {
        title: format!("Rebuild {name} applying updates?"),
        body,
        pending: Pending::Rebuild(name),
    }
}

/// The two sides of a deploy or rollback confirmation: from the `live` release (or nothing
/// deployed) to the release whose build `target` redeploys, or to the new `build`.
pub fn deploy_sides(
    releases: &[ReleaseRecord],
    live: Option<i64>,
    target: &Target,
    build: Option<&BuildRecord>,
) -> (String, String) {
    let from = match live.and_then(|l| releases.iter().find(|r| r.release == l)) {
        Some(r) => format!("live {}", release_text(r)),
        None => "nothing deployed".into(),
    };
    let to = match target.rollback_of {
        Some(n) => match releases.iter().find(|r| r.release == n) {
            Some(r) => format!("{} (as a new release)", release_text(r)),
            None => format!("release #{n}"),
        },
        None => format!(
            "build #{}, {} (new release)",
            target.build_id,
            build
                .and_then(|b| b.image_digest.as_deref())
                .map(crate::text::short_digest)
                .unwrap_or_else(|| "-".into())
        ),
    };
    (from, to)
}

/// How a deploy replaces the live release, for its confirmation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Replacement {
    /// Blue-green or recreate.
    pub strategy: crate::stack::Strategy,
    /// How long the stack's last recreate left it unavailable, milliseconds.
    pub last_unavailable_ms: Option<f64>,
    /// A TCP route (it refuses connections while unavailable, rather than answering 503).
    pub tcp: bool,
}

/// The confirmation of a deploy (or a rollback) of `name` from `from` to `to` (`sides`,
/// both as [`release_text`] or a build) with `replicas` instances, what it `changes`
/// against the live release ([`crate::diff::Diff::summary`]), the `downgrade` it is and
/// its `strategy` with the unavailability of the stack's last recreate in milliseconds (a
/// recreate says the stack is unavailable until the new release is healthy, and for how
/// long it was the last time), sending `req` when confirmed.
pub fn deploy(
    name: &str,
    (from, to): (&str, &str),
    replicas: usize,
    changes: Option<&str>,
    downgrade: Option<&crate::deploy::downgrade::Downgrade>,
    how: Replacement,
    req: DeployRequest,
) -> Confirm {
    let mut body = vec![
        format!("stack     {name}"),
        format!("from      {from}"),
        format!("to        {to}"),
        format!("replicas  {replicas}"),
    ];
    if let Some(c) = changes {
        body.push(format!("changes   {c}"));
    }
    if let Some(d) = downgrade {
        body.push(format!("DOWNGRADE {}", d.summary()));
        body.push(format!("          {}", d.examples(3)));
    }
    if how.strategy == crate::stack::Strategy::Recreate && from != "nothing deployed" {
        let how_long = match how.last_unavailable_ms {
            Some(ms) => format!("({:.1} s the last time)", ms / 1e3),
            None => "(a few seconds)".to_string(),
        };
        body.extend([
            "strategy  recreate ([data] not shared): the old instances drain".into(),
            format!(
                "          and stop first; {name} {} until the new ones",
                if how.tcp {
                    "refuses clients"
                } else {
                    "answers 503"
                }
            ),
            format!("          are healthy {how_long}; if they never are, the old"),
            "          release starts again on the same data.".into(),
        ]);
    } else {
        body.extend([
            "strategy  blue-green, no downtime: the route switches once all".into(),
            "          new instances are healthy; the old ones drain. If they".into(),
            "          never get healthy, nothing changes.".into(),
        ]);
    }
    body.push("Runs in the background (starts the agent if needed); J lists it.".into());
    Confirm {
        title: format!(
            "{} {name}?{}",
            if req.rollback { "Roll back" } else { "Deploy" },
            if downgrade.is_some() {
                " (a downgrade)"
            } else {
                ""
            }
        ),
        body,
        pending: Pending::Deploy(req),
    }
}

/// The confirmation of cancelling the running job `j`.
pub fn cancel_job(j: &Job) -> Confirm {
    Confirm {
        title: format!("Cancel job {}?", j.id),
        body: vec![
            format!(
                "job {}: {} of {}{}",
                j.id,
                j.kind,
                j.stack,
                j.build_id
                    .map(|b| format!(" (build #{b})"))
                    .unwrap_or_default()
            ),
            "running children are stopped; the build is recorded".into(),
            "as cancelled and leaves no image.".into(),
        ],
        pending: Pending::CancelJob(j.id),
    }
}
