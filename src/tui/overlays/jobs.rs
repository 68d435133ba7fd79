//! The Jobs overlay (`J`): this session's background jobs with their step and state, and
//! what a job's messages change in its row.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Row, Table};
use ratatui::Frame;

use crate::jobs::BuildEvent;
use crate::store::builds::BuildStatus;
use crate::tui::keymap::Action;
use crate::tui::msg::{Effect, JobMsg};
use crate::tui::overlays::confirm;
use crate::tui::state::{Focus, Job, JobState, Overlay, Pane, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, centered, selectable};

/// Draw the jobs overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Jobs { selected }) = &state.overlay else {
        return;
    };
    let n = state.jobs.len() as u16;
    let r = centered(area, 76, (n + 4).max(6));
    f.render_widget(Clear, r);
    let b = block(Span::styled(" Jobs ", theme.accent), true, theme);
    let inner = b.inner(r);
    f.render_widget(b, r);
    if state.jobs.is_empty() {
        f.render_widget(
            Paragraph::new(Line::styled(
                "No background jobs in this session.",
                theme.dim,
            )),
            inner,
        );
        return;
    }
    let now = state.now;
    let rows: Vec<Row> = state
        .jobs
        .iter()
        .rev()
        .enumerate()
        .map(|(i, j)| {
            let (st, style) = match &j.state {
                JobState::Running => ("running".to_string(), theme.warn),
                JobState::Succeeded => ("succeeded".to_string(), theme.ok),
                JobState::Cancelled => ("cancelled".to_string(), theme.warn),
                JobState::Failed(e) => (
                    format!("failed: {}", crate::text::sanitize_for_terminal(e)),
                    theme.error,
                ),
            };
            let secs = (j.finished.unwrap_or(now) - j.started).num_seconds().max(0);
            let row = Row::new(vec![
                Span::raw(j.id.to_string()),
                Span::raw(j.kind.clone()),
                Span::raw(j.stack.clone()),
                Span::raw(j.build_id.map(|b| format!("#{b}")).unwrap_or_default()),
                Span::raw(j.step.map(|s| s.as_str()).unwrap_or("").to_string()),
                Span::raw(j.lines.to_string()),
                Span::raw(format!("{secs}s")),
                Span::styled(st, style),
            ]);
            selectable(row, i == *selected, theme)
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(3),
                Constraint::Length(8),
                Constraint::Length(10),
                Constraint::Length(5),
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Length(5),
                Constraint::Min(8),
            ],
        )
        .header(
            Row::new(vec![
                "JOB", "KIND", "STACK", "BUILD", "STEP", "LINES", "TIME", "STATE",
            ])
            .style(theme.dim),
        )
        .column_spacing(1),
        inner,
    );
}

/// Keys of the Jobs overlay: move, cancel a running build (after a confirmation), open a job's log or lines.
pub fn key(state: &mut State, act: Option<Action>, mut selected: usize) -> Vec<Effect> {
    let n = state.jobs.len();
    match act {
        Some(Action::Back) | Some(Action::Jobs) => return Vec::new(),
        Some(Action::Quit) => return confirm::ask_quit(state),
        Some(Action::Down) => selected = (selected + 1).min(n.saturating_sub(1)),
        Some(Action::Up) => selected = selected.saturating_sub(1),
        Some(Action::Top) => selected = 0,
        Some(Action::Bottom) => selected = n.saturating_sub(1),
        Some(Action::CancelJob) => {
            // Newest first on screen.
            if let Some(j) = state.jobs.iter().rev().nth(selected) {
                if j.state == JobState::Running && !matches!(j.kind.as_str(), "build" | "rebuild") {
                    state.status = Some(format!(
                        "job {} ({}) cannot be cancelled: it ends by itself (a deploy \
                         fails back to the live release)",
                        j.id, j.kind
                    ));
                } else if j.state == JobState::Running {
                    let c = confirm::cancel_job(j);
                    state.overlay = Some(Overlay::Confirm(c));
                    return Vec::new();
                } else {
                    state.status = Some(format!("job {} is not running", j.id));
                }
            }
        }
        Some(Action::Enter) => {
            if let Some(j) = state.jobs.iter().rev().nth(selected) {
                if j.build_id.is_none() {
                    // A check, deploy or rollback: its progress lines and outcome.
                    state.overlay = Some(Overlay::detail(
                        format!("Job {}: {} of {}", j.id, j.kind, j.stack),
                        j.live.tail.iter().map(|(_, l)| l.clone()).collect(),
                    ));
                    return Vec::new();
                }
                if let Some(b) = j.build_id {
                    let stack = j.stack.clone();
                    state.select_stack(&stack);
                    state.select_build = Some(b);
                    state.pane = Pane::Log;
                    state.focus = Focus::Pane;
                    return vec![Effect::Reload];
                }
            }
        }
        _ => {}
    }
    state.overlay = Some(Overlay::Jobs { selected });
    Vec::new()
}

/// Apply a message of a background job to its row (and the live log of its build).
pub fn on_msg(state: &mut State, msg: JobMsg) -> Vec<Effect> {
    match msg {
        JobMsg::Event { job, event } => {
            let Some(j) = state.jobs.iter_mut().find(|j| j.id == job) else {
                return Vec::new();
            };
            match event {
                BuildEvent::Started { build_id, .. } => {
                    j.build_id = Some(build_id);
                    if state.loaded_stack.as_deref() == Some(j.stack.as_str()) {
                        state.select_build = Some(build_id);
                        // Show its log from the first line: live lines arrive before the
                        // reload selects the build.
                        let (wrap, height) = (state.log.wrap, state.log.height);
                        state.log = crate::tui::state::LogView {
                            build_id: Some(build_id),
                            follow: true,
                            wrap,
                            height,
                            ..Default::default()
                        };
                    }
                    vec![Effect::Reload]
                }
                BuildEvent::StepStarted { step, .. } => {
                    j.step = Some(step);
                    Vec::new()
                }
                BuildEvent::Log {
                    build_id,
                    seq,
                    stream,
                    line,
                } => {
                    j.lines += 1;
                    if seq >= 0 {
                        let text = crate::text::sanitize_for_terminal(&line);
                        if state.log.build_id == Some(build_id) {
                            state
                                .log
                                .push_live(seq as usize, stream.as_str(), text.clone());
                        }
                        j.live.push_live(seq as usize, stream.as_str(), text);
                    }
                    Vec::new()
                }
                BuildEvent::Base { .. } => Vec::new(),
                BuildEvent::Finished { .. } => vec![Effect::Reload],
            }
        }
        JobMsg::Done { job, outcome } => {
            let now = state.now;
            let Some(j) = state.jobs.iter_mut().find(|j| j.id == job) else {
                return Vec::new();
            };
            j.finished = Some(now);
            let build = j
                .build_id
                .map(|b| format!("build #{b}"))
                .unwrap_or_else(|| "build".into());
            let (st, msg) = match outcome {
                Ok((BuildStatus::Succeeded, _)) => (
                    JobState::Succeeded,
                    format!("{build} of {} succeeded", j.stack),
                ),
                Ok((BuildStatus::Cancelled, _)) => (
                    JobState::Cancelled,
                    format!("{build} of {} cancelled; no image kept", j.stack),
                ),
                Ok((s, e)) => {
                    let e = e.unwrap_or_else(|| s.as_str().to_string());
                    (
                        JobState::Failed(e.clone()),
                        format!("{build} of {} {}: {e}", j.stack, s.as_str()),
                    )
                }
                Err(e) => (
                    JobState::Failed(e.to_string()),
                    format!("job {job} ({} {}) failed: {e}", j.kind, j.stack),
                ),
            };
            j.state = st;
            state.status = Some(crate::text::sanitize_for_terminal(&msg));
            vec![Effect::Reload]
        }
        JobMsg::Line { job, line } => {
            if let Some(j) = state.jobs.iter_mut().find(|j| j.id == job) {
                job_line(j, &line);
            }
            Vec::new()
        }
        JobMsg::Ended { job, outcome } => {
            let now = state.now;
            let Some(j) = state.jobs.iter_mut().find(|j| j.id == job) else {
                return Vec::new();
            };
            j.finished = Some(now);
            let (st, text) = match outcome {
                Ok(summary) => (JobState::Succeeded, summary),
                Err(e) => (
                    JobState::Failed(e.to_string().lines().next().unwrap_or("").to_string()),
                    format!("{} of {} failed: {e}", j.kind, j.stack),
                ),
            };
            job_line(j, &text);
            let failed = matches!(st, JobState::Failed(_));
            j.state = st;
            // One line in the footer; every line stays with the job (J, enter).
            let one = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            state.status = Some(crate::text::sanitize_for_terminal(&if failed {
                format!("{one} (J, enter: details)")
            } else {
                one
            }));
            vec![Effect::Reload]
        }
    }
}

/// Append `text` (one or more lines) to a non-build job's lines.
fn job_line(j: &mut Job, text: &str) {
    for l in text.lines() {
        let seq = j.lines as usize;
        j.lines += 1;
        j.live
            .push_live(seq, "drover", crate::text::sanitize_for_terminal(l));
    }
}
