//! The Releases pane: the agent's route and instances for the selected stack, then its
//! release history; `d` asks to deploy a build, `R` to roll back (to the selected
//! release).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Row, Table};
use ratatui::Frame;

use crate::deploy::api::{DeployRequest, InstanceStatus};
use crate::deploy::plan::{self, Current};
use crate::text::{age_at, short_digest};
use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::overlays::confirm;
use crate::tui::state::{AgentView, Focus, Overlay, Pane, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, bordered_inner, empty_state, fit_offset, selectable};

/// The agent line of the Releases pane and the selected stack's instances (live release
/// and a deploy in progress), from the polled agent status.
fn agent_lines(state: &State, theme: &Theme) -> (Line<'static>, Vec<InstanceStatus>) {
    let stack = state.selected_stack().unwrap_or("");
    match &state.agent {
        AgentView::Unknown => (Line::styled("agent: checking…", theme.dim), Vec::new()),
        AgentView::NotRunning => (
            Line::styled(
                format!(
                    "agent not running ({} deploys and starts it)",
                    state.keymap.first(Action::Deploy)
                ),
                theme.dim,
            ),
            Vec::new(),
        ),
        // Short enough for an 80-column console; the CLI prints the whole message.
        AgentView::Denied(_) => (
            Line::styled(
                "agent socket: permission denied (run as the agent's user)",
                theme.warn,
            ),
            Vec::new(),
        ),
        AgentView::Running(a) => match a.stacks.iter().find(|s| s.stack == stack) {
            None => (
                Line::styled(
                    format!("agent pid {}: no route for {stack} yet", a.pid),
                    theme.dim,
                ),
                Vec::new(),
            ),
            Some(s) => {
                let healthy = s
                    .instances
                    .iter()
                    .filter(|i| i.healthy && Some(i.release) == s.live_release)
                    .count();
                let style = if s.live_release.is_some() && healthy >= s.replicas.max(1) {
                    theme.ok
                } else {
                    theme.warn
                };
                let live = s
                    .live_release
                    .map(|r| format!("#{r}"))
                    .unwrap_or_else(|| "-".into());
                let mut spans = vec![Span::raw(format!("route :{}  ", s.route_port))];
                if let Some(note) = &s.stopped {
                    // "by alice at TIME": who, the time is in `drover status`.
                    let who = note.split(" at ").next().unwrap_or(note);
                    spans.push(Span::styled(
                        format!(
                            "live {live}  STOPPED {who}: {} starts it",
                            state.keymap.first(Action::StartStack)
                        ),
                        theme.warn,
                    ));
                } else {
                    spans.push(Span::styled(
                        format!("live {live}  {healthy}/{} healthy", s.replicas),
                        style,
                    ));
                }
                // A deploy running, else the watch window (a stopped stack has neither).
                let note = match (&s.deploying, &s.watching) {
                    (Some(d), _) => Some(d.clone()),
                    (None, Some(w)) => Some(watch_note(w, state.now)),
                    (None, None) => None,
                };
                if let (None, Some(n)) = (&s.stopped, note) {
                    spans.push(Span::styled(format!("  ({n})"), theme.warn));
                }
                (Line::from(spans), s.instances.clone())
            }
        },
    }
}

/// Draw the Releases pane into `area` (offsets as [`fit`] left them).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme, focused: bool) {
    let b = block(
        Span::styled(
            format!(" Releases ({}) ", state.releases.len()),
            theme.accent,
        ),
        focused,
        theme,
    );
    let inner = b.inner(area);
    f.render_widget(b, area);
    let (agent, instances) = agent_lines(state, theme);
    let [agent_area, inst_area, traffic_area, list_area] = areas(inner, instances.len());
    if !state.traffic.is_empty() {
        draw_traffic(f, traffic_area, state, theme);
    }
    let inst_h = inst_area.height;
    f.render_widget(Paragraph::new(agent), agent_area);
    if inst_h > 0 {
        let rows: Vec<Row> = instances
            .iter()
            .map(|i| {
                let st = if i.healthy { theme.ok } else { theme.warn };
                Row::new(vec![
                    Span::raw(i.id.clone()),
                    Span::raw(format!("#{}", i.release)),
                    Span::styled(i.state.as_str(), st),
                    Span::raw(format!(":{}", i.port)),
                    Span::styled(crate::text::sanitize_for_terminal(&i.last_check), theme.dim),
                ])
            })
            .collect();
        f.render_widget(
            Table::new(
                rows,
                [
                    Constraint::Length(16),
                    Constraint::Length(4),
                    Constraint::Length(9),
                    Constraint::Length(6),
                    Constraint::Fill(1),
                ],
            )
            .header(
                Row::new(vec!["INSTANCE", "REL", "STATE", "PORT", "LAST CHECK"]).style(theme.dim),
            )
            .column_spacing(1),
            inst_area,
        );
    }
    if state.releases.is_empty() {
        empty_state(
            f,
            list_area,
            vec![
                "No releases yet.".into(),
                format!(
                    "{} deploys the newest succeeded build (or the one selected in Builds); \
                     {} rolls back. Releases of this stack show here with build, image and \
                     status.",
                    state.keymap.first(Action::Deploy),
                    state.keymap.first(Action::Rollback)
                ),
            ],
            theme,
        );
        return;
    }
    let body_h = list_area.height.saturating_sub(1) as usize;
    let l = &state.releases_list;
    let now = state.now;
    let wide = list_area.width >= 60;
    let rows: Vec<Row> = l
        .on_screen(body_h)
        .map(|(pos, i)| {
            let r = &state.releases[i];
            let st = match r.status.as_str() {
                "live" => theme.ok,
                "failed" => theme.error,
                "deploying" => theme.warn,
                _ => Style::default(),
            };
            let mut cells = vec![
                Span::raw(format!("#{}", r.release)),
                Span::raw(format!("#{}", r.build_id)),
                Span::raw(short_digest(&r.image_digest)),
                Span::raw(age_at(&r.created_at, now)),
                Span::styled(r.status.as_str(), st),
            ];
            if wide {
                cells.push(Span::raw(r.by.clone()));
                cells.push(Span::styled(
                    r.rollback_of
                        .map(|n| format!("rollback to #{n}"))
                        .or_else(|| {
                            r.error.as_deref().map(|e| {
                                crate::text::sanitize_for_terminal(e.lines().next().unwrap_or(""))
                            })
                        })
                        .unwrap_or_default(),
                    theme.dim,
                ));
            }
            let row = Row::new(cells);
            selectable(row, pos == l.selected, theme)
        })
        .collect();
    let mut widths = vec![
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Length(4),
        Constraint::Length(10),
    ];
    let mut header = vec!["REL", "BUILD", "IMAGE", "AGE", "STATUS"];
    if wide {
        widths.extend([Constraint::Length(8), Constraint::Fill(1)]);
        header.extend(["BY", "NOTE"]);
    }
    f.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.dim))
            .column_spacing(1),
        list_area,
    );
}

/// `watching #8, 1m 30s left` from the agent's `release 8 until TIME: …`
/// ([`crate::deploy::watch::Watching::describe`]) at `now`; `watching` when it names
/// neither.
pub fn watch_note(watching: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let release = watching
        .strip_prefix("release ")
        .and_then(|r| r.split(' ').next())
        .and_then(|r| r.parse::<i64>().ok());
    let until = watching
        .split_once(" until ")
        .and_then(|(_, t)| t.get(..20))
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    match (release, until) {
        (Some(r), Some(t)) => {
            let left = (t.with_timezone(&chrono::Utc) - now).num_seconds().max(0) as u64;
            format!(
                "watching #{r}, {} left",
                humantime::format_duration(std::time::Duration::from_secs(left))
            )
        }
        (Some(r), None) => format!("watching #{r}"),
        _ => "watching".into(),
    }
}

/// Minutes of route traffic the pane's sparkline shows.
pub const TRAFFIC_MINUTES: usize = 30;

/// Requests and 5xx per minute of the last [`TRAFFIC_MINUTES`] minutes up to `now`
/// (Unix seconds), every release summed, oldest first (empty minutes are 0).
pub fn traffic_series(rows: &[crate::store::metrics::MinuteRow], now: i64) -> (Vec<u64>, Vec<u64>) {
    let last = now - now.rem_euclid(60);
    let first = last - (TRAFFIC_MINUTES as i64 - 1) * 60;
    let (mut req, mut err) = (vec![0; TRAFFIC_MINUTES], vec![0; TRAFFIC_MINUTES]);
    for r in rows {
        if (first..=last).contains(&r.minute_unix) {
            let i = ((r.minute_unix - first) / 60) as usize;
            req[i] += r.figures.requests;
            err[i] += r.figures.status_5xx;
        }
    }
    (req, err)
}

/// One line: `req ▁▂▅█ 5xx ▁▁▇ 1.2k/30m p99 3.1 ms` (both sparklines on the requests'
/// scale, so the 5xx bars show their share; p99 of the newest minute with traffic).
fn draw_traffic(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    use ratatui::widgets::Sparkline;
    let (req, err) = traffic_series(&state.traffic, state.now.timestamp());
    let total: u64 = req.iter().sum();
    let errors: u64 = err.iter().sum();
    let p99 = state
        .traffic
        .iter()
        .rev()
        .find_map(|r| r.figures.p99_ms)
        .map(|ms| format!(" p99 {ms:.1}ms"))
        .unwrap_or_default();
    let tail = format!(" {}/{TRAFFIC_MINUTES}m{p99}", crate::text::si_count(total));
    let fixed = 4 + 5 + tail.len() as u16;
    let n = (area.width.saturating_sub(fixed) / 2).min(TRAFFIC_MINUTES as u16);
    if n < 4 {
        return;
    }
    let max = req.iter().copied().max().unwrap_or(1).max(1);
    let skip = TRAFFIC_MINUTES - n as usize;
    let [l1, s1, l2, s2, rest] = Layout::horizontal([
        Constraint::Length(4),
        Constraint::Length(n),
        Constraint::Length(5),
        Constraint::Length(n),
        Constraint::Fill(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(Span::styled("req ", theme.dim)), l1);
    f.render_widget(
        Sparkline::default()
            .data(&req[skip..])
            .max(max)
            .style(theme.ok),
        s1,
    );
    f.render_widget(Paragraph::new(Span::styled(" 5xx ", theme.dim)), l2);
    let err_style = if errors > 0 { theme.error } else { theme.dim };
    f.render_widget(
        Sparkline::default()
            .data(&err[skip..])
            .max(max)
            .style(err_style),
        s2,
    );
    f.render_widget(Paragraph::new(Span::styled(tail, theme.dim)), rest);
}

/// `[agent line, instances, gap, releases]` inside the border, for `instances` rows.
fn areas(inner: Rect, instances: usize) -> [Rect; 4] {
    let inst_h = if instances == 0 {
        0
    } else {
        (instances as u16 + 1).min(inner.height / 3).max(2)
    };
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(inst_h),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(inner)
}

/// How many instance rows [`agent_lines`] lists for the selected stack.
fn instance_count(state: &State) -> usize {
    let stack = state.selected_stack().unwrap_or("");
    match &state.agent {
        AgentView::Running(a) => a
            .stacks
            .iter()
            .find(|s| s.stack == stack)
            .map_or(0, |s| s.instances.len()),
        _ => 0,
    }
}

/// Keep the Releases selection on screen for a pane drawn into `area` (every release is
/// listed: the pane has no filter).
pub fn fit(state: &mut State, area: Rect) {
    let [_, _, _, list_area] = areas(bordered_inner(area), instance_count(state));
    if state.releases.is_empty() {
        return;
    }
    if state.releases_list.visible.len() != state.releases.len() {
        state.releases_list.visible = (0..state.releases.len()).collect();
    }
    fit_offset(
        &mut state.releases_list,
        list_area.height.saturating_sub(1) as usize,
    );
}

/// `enter` on a release: its detail (who, when, build, image, verification, error,
/// instance history), read off the UI task ([`Effect::ReleaseDetail`]).
pub fn enter(state: &mut State) -> Vec<Effect> {
    let (Some(stack), Some(r)) = (
        state.selected_stack().map(str::to_string),
        state.releases_list.pick(&state.releases).map(|r| r.release),
    ) else {
        return Vec::new();
    };
    state.status = Some(format!("reading release #{r}…"));
    vec![Effect::ReleaseDetail { stack, release: r }]
}

/// Read release `release` of `stack` as the Detail overlay's title and lines.
pub fn load_detail(
    paths: &crate::paths::Paths,
    stack: &str,
    release: i64,
) -> Result<(String, Vec<String>), String> {
    let store = crate::store::Store::open(&paths.database()).map_err(|e| format!("{e:#}"))?;
    let d = crate::deploy::detail::read(&store, stack, release).map_err(|e| format!("{e:#}"))?;
    Ok((format!("Release #{release} of {stack}"), d.lines()))
}

/// `d` (deploy the selected build in Builds, else the newest succeeded one) and `R` (roll
/// back to the previous release, or to the one selected in Releases): decided by
/// [`plan::resolve`] on the loaded builds and releases, then confirmed with from -> to.
pub fn deploy(state: &mut State, rollback: bool) {
    let what = if rollback { "roll back" } else { "deploy" };
    let Some(name) = state.idle_stack(what) else {
        return;
    };
    if state.loaded_stack.as_deref() != Some(name.as_str()) {
        state.status = Some(format!("{name} is still loading; try again"));
        return;
    }
    let mut req = DeployRequest {
        stack: name.clone(),
        rollback,
        ..Default::default()
    };
    let current = Current::from_releases(&state.releases);
    let build = if rollback {
        None
    } else if state.pane == Pane::Builds && state.focus == Focus::Pane {
        let b = state.selected_build().cloned();
        req.build = b.as_ref().map(|b| b.id);
        b
    } else {
        state
            .builds
            .iter()
            .find(|b| b.status == crate::store::builds::BuildStatus::Succeeded)
            .cloned()
    };
    if rollback && state.pane == Pane::Releases && state.focus == Focus::Pane {
        if let Some(r) = state.releases_list.pick(&state.releases) {
            if Some(r.release) != current.map(|c| c.release) {
                req.to = Some(r.release);
            }
        }
    }
    let target = match plan::resolve(&req, &state.releases, current, build.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            state.status = Some(format!("cannot {what} {name}: {e}"));
            return;
        }
    };
    let (from, to) = confirm::deploy_sides(
        &state.releases,
        current.map(|c| c.release),
        &target,
        build.as_ref(),
    );
    req.replicas = Some(target.replicas);
    let downgrade = state.downgrades.get(&target.build_id);
    let changes = state
        .change_summaries
        .get(&target.build_id)
        .map(String::as_str);
    state.overlay = Some(Overlay::Confirm(confirm::deploy(
        &name,
        (&from, &to),
        target.replicas,
        changes,
        downgrade,
        state
            .stacks
            .iter()
            .find(|s| s.name == name)
            .map_or(confirm::Replacement::default(), |s| confirm::Replacement {
                strategy: s.strategy,
                last_unavailable_ms: s.last_unavailable_ms,
                tcp: s.tcp,
            }),
        req,
    )));
}
