//! The command palette (`:`): the typed command and the commands it completes to; a
//! command names the [`Action`] it runs, which the dispatcher ([`crate::tui::update`]) does.

use crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;
use tui_input::backend::crossterm::EventHandler;
use tui_input::Input;

use crate::tui::keymap::Action;
use crate::tui::msg::Effect;
use crate::tui::overlays::detail::show_config_problems;
use crate::tui::state::{Focus, Overlay, Pane, State};
use crate::tui::theme::Theme;
use crate::tui::widgets::{block, centered};

/// Draw the palette overlay over `area` (nothing when another overlay is open).
pub fn draw(f: &mut Frame, area: Rect, state: &State, theme: &Theme) {
    let Some(Overlay::Palette { input, selected }) = &state.overlay else {
        return;
    };
    let comps = completions(input.value(), state);
    let h = (comps.len() as u16 + 3).min(area.height);
    let r = centered(area, 60, h);
    let r = Rect {
        y: area.y + 2.min(area.height.saturating_sub(h)),
        ..r
    };
    f.render_widget(Clear, r);
    let b = block(Span::styled(" Command ", theme.accent), true, theme);
    let inner = b.inner(r);
    f.render_widget(b, r);
    let mut lines = vec![Line::from(vec![
        Span::styled(":", theme.key),
        Span::raw(crate::text::sanitize_for_terminal(input.value())),
    ])];
    for (i, (name, desc, ok)) in comps.iter().enumerate() {
        let style = if i == *selected {
            theme.selected
        } else if *ok {
            Style::new()
        } else {
            theme.dim
        };
        let name = crate::text::sanitize_for_terminal(name);
        let desc = crate::text::sanitize_for_terminal(desc);
        lines.push(Line::styled(format!("{name:<10} {desc}"), style));
    }
    if comps.is_empty() {
        lines.push(Line::styled(
            if input.value().trim_start().contains(' ') {
                "nothing to complete"
            } else {
                "no such command"
            },
            theme.dim,
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);
    let x = inner.x + 1 + input.visual_cursor() as u16;
    if x < inner.x + inner.width {
        f.set_cursor_position((x, inner.y));
    }
}

/// A command of the `:` palette: name, description, whether it works yet.
pub const COMMANDS: &[(&str, &str, bool)] = &[
    ("build", "build the selected stack (or: build NAME)", true),
    ("builds", "show the Builds pane", true),
    ("logs", "show the Log pane", true),
    ("manifest", "show the Manifest pane", true),
    ("updates", "show the Updates pane", true),
    ("releases", "show the Releases pane", true),
    ("jobs", "list background jobs", true),
    ("help", "show the keys", true),
    ("check", "check the selected stack for updates", true),
    ("rebuild", "rebuild applying pending updates", true),
    (
        "lock",
        "refresh the selected stack's lock (lock update: move it to the updates)",
        true,
    ),
    (
        "deploy",
        "deploy the selected or newest build (or: deploy STACK [BUILD])",
        true,
    ),
    (
        "rollback",
        "roll back to the previous (or selected) release (or: rollback STACK [rN])",
        true,
    ),
    (
        "diff",
        "what changes: diff [STACK] [A] [B] (builds, rN, live, newest)",
        true,
    ),
    (
        "new",
        "start a stack from a template: new NAME TEMPLATE",
        true,
    ),
    ("problems", "show the config file problems", true),
    ("message", "show the last footer message whole", true),
    ("quit", "quit drover", true),
];

/// A completion: the word, what it is, whether it can be chosen (a hint cannot).
pub type Completion = (String, String, bool);

/// Palette completions for the typed text: command names for the first word; then, from
/// what the console already holds (no store read), stack names for a command's first
/// argument (`build`, `deploy`, `rollback`, `diff`), the loaded stack's succeeded build ids
/// for `deploy STACK`, its release numbers (`rN`) for `rollback STACK`, and both (with
/// `live`, `newest`) for `diff STACK A B`. Only candidates starting with the word being
/// typed; for a stack that is not the loaded one, a hint to select it.
pub fn completions(text: &str, state: &State) -> Vec<Completion> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let trailing = text.ends_with(char::is_whitespace);
    if words.len() <= 1 && !trailing {
        let word = words.first().copied().unwrap_or("");
        return COMMANDS
            .iter()
            .filter(|c| c.0.starts_with(word))
            .map(|c| (c.0.to_string(), c.1.to_string(), c.2))
            .collect();
    }
    let args = &words[1..];
    let (idx, partial) = if trailing {
        (args.len(), "")
    } else {
        (args.len() - 1, args[args.len() - 1])
    };
    let cmd = words[0];
    let mut out: Vec<Completion> = Vec::new();
    let stack = args.first().copied().unwrap_or("");
    let loaded = state.loaded_stack.as_deref() == Some(stack);
    let builds = |out: &mut Vec<Completion>| {
        for b in &state.builds {
            if b.status == crate::store::builds::BuildStatus::Succeeded {
                let live = crate::deploy::plan::Current::from_releases(&state.releases)
                    .filter(|c| c.build_id == b.id)
                    .map(|c| format!(", live #{}", c.release))
                    .unwrap_or_default();
                out.push((
                    b.id.to_string(),
                    format!(
                        "build #{} succeeded, {} ago{live}",
                        b.id,
                        crate::text::age_at(&b.started_at, state.now)
                    ),
                    true,
                ));
            }
        }
    };
    let releases = |out: &mut Vec<Completion>| {
        for r in &state.releases {
            out.push((
                format!("r{}", r.release),
                format!(
                    "release {} of build #{}, {}",
                    r.release,
                    r.build_id,
                    r.status.as_str()
                ),
                true,
            ));
        }
    };
    match (cmd, idx) {
        ("build" | "deploy" | "rollback" | "diff", 0) => {
            for s in &state.stacks {
                out.push((s.name.clone(), s.description.clone(), true));
            }
        }
        ("deploy", 1) | ("rollback", 1) | ("diff", 1 | 2) if !loaded => {
            return vec![(
                String::new(),
                format!("select {stack} first: its builds and releases show then"),
                false,
            )];
        }
        ("new", 0) => {
            return vec![(
                String::new(),
                "type the new stack's name (lowercase letters, digits, -)".into(),
                false,
            )];
        }
        ("new", 1) => {
            for t in crate::stack::templates::TEMPLATES {
                out.push((t.name.to_string(), t.about.trim().to_string(), true));
            }
        }
        ("deploy", 1) => builds(&mut out),
        ("rollback", 1) => releases(&mut out),
        ("diff", 1 | 2) => {
            for w in ["live", "newest"] {
                out.push((w.into(), format!("the {w} build of {stack}"), true));
            }
            builds(&mut out);
            releases(&mut out);
        }
        _ => {}
    }
    out.retain(|c| c.0.starts_with(partial));
    out
}

/// What a key of the palette leads to: its effects, then the [`Action`] that the command
/// run by `enter` stands for, if any, for the dispatcher to do (after those effects).
pub type Outcome = (Vec<Effect>, Option<Action>);

/// Keys of the palette: typing, choosing, tab completion, enter runs the command.
pub fn key(state: &mut State, k: KeyEvent, mut input: Input, mut selected: usize) -> Outcome {
    let n = completions(input.value(), state).len();
    match k.code {
        KeyCode::Esc => return (Vec::new(), None),
        KeyCode::Enter => return run_command(state, input.value(), selected),
        KeyCode::Down => selected = (selected + 1).min(n.saturating_sub(1)),
        KeyCode::Up => selected = selected.saturating_sub(1),
        KeyCode::Tab => {
            let text = input.value().to_string();
            let comps = completions(&text, state);
            if let Some(c) = comps.get(selected).filter(|c| c.2) {
                let words: Vec<&str> = text.split_whitespace().collect();
                let trailing = text.ends_with(char::is_whitespace);
                let v = if words.len() <= 1 && !trailing {
                    // The command name; its arguments follow as typed.
                    c.0.clone()
                } else {
                    // The word being typed (none after a space) becomes the candidate.
                    let keep = if trailing {
                        &words[..]
                    } else {
                        &words[..words.len() - 1]
                    };
                    format!("{} {} ", keep.join(" "), c.0)
                };
                input = Input::new(v);
                selected = 0;
            }
        }
        _ => {
            input.handle_event(&Event::Key(k));
            selected = 0;
        }
    }
    state.overlay = Some(Overlay::Palette { input, selected });
    (Vec::new(), None)
}

/// `:new NAME TEMPLATE`: write the stack and its app skeleton off the UI task (the same
/// library call as `drover new`); the new stack is selected once the list holds it.
fn new_stack(state: &mut State, name: Option<String>, template: Option<String>) -> Outcome {
    let names: Vec<&str> = crate::stack::templates::TEMPLATES
        .iter()
        .map(|t| t.name)
        .collect();
    match (name, template) {
        (Some(name), Some(template)) => {
            state.status = Some(format!("writing stack {name} from template {template}…"));
            (vec![Effect::NewStack { name, template }], None)
        }
        _ => {
            state.status = Some(format!(
                "usage: new NAME TEMPLATE, e.g. `new api python`; templates: {}",
                names.join(", ")
            ));
            (Vec::new(), None)
        }
    }
}

/// `:lock` / `:lock update`: refresh the selected stack's lock (or move it to the pending
/// updates) as a background job; the next `b` builds it.
fn lock(state: &mut State, update: bool) -> Vec<Effect> {
    let Some(stack) = state.idle_stack("lock") else {
        return Vec::new();
    };
    let (job, _) = state.new_job("lock", &stack);
    state.status = Some(format!(
        "job {job}: {} the lock of {stack}; J lists jobs",
        if update { "updating" } else { "refreshing" }
    ));
    vec![Effect::Lock { job, stack, update }]
}

/// `deploy [STACK [BUILD]]`, `rollback [STACK [rN]]`, `diff [STACK [A [B]]]` once STACK (if
/// given) is the selected stack: a build or release named is selected in its pane first,
/// so the usual action (asking first) takes it.
fn with_args(state: &mut State, name: &str, arg: Option<String>, more: &[String]) -> Outcome {
    let stack = arg.or_else(|| state.selected_stack().map(str::to_string));
    let Some(stack) = stack else {
        state.status = Some("no stack selected".into());
        return (Vec::new(), None);
    };
    let effects = vec![Effect::Reload];
    match name {
        "diff" => {
            let parse = |w: Option<&String>, d: crate::diff::Ref| match w {
                None => Ok(d),
                Some(w) => w.parse::<crate::diff::Ref>(),
            };
            match (
                parse(more.first(), crate::diff::Ref::Live),
                parse(more.get(1), crate::diff::Ref::Newest),
            ) {
                (Ok(a), Ok(b)) => {
                    state.status = Some("reading the diff…".into());
                    (vec![Effect::Diff { stack, a, b }], None)
                }
                (Err(e), _) | (_, Err(e)) => {
                    state.status = Some(e);
                    (Vec::new(), None)
                }
            }
        }
        "deploy" => {
            if let Some(w) = more.first() {
                let id = w.trim_start_matches('#').parse::<i64>().ok();
                let builds = &state.builds;
                let found =
                    id.is_some_and(|id| state.builds_list.select_where(|i| builds[i].id == id));
                if !found {
                    state.status = Some(format!("{stack} has no build `{w}`"));
                    return (Vec::new(), None);
                }
                state.pane = Pane::Builds;
                state.focus = Focus::Pane;
            }
            (effects, Some(Action::Deploy))
        }
        _ => {
            if let Some(w) = more.first() {
                let n = w.trim_start_matches('r').parse::<i64>().ok();
                let releases = &state.releases;
                let found = n.is_some_and(|n| {
                    state
                        .releases_list
                        .select_where(|i| releases[i].release == n)
                });
                if !found {
                    state.status = Some(format!("{stack} has no release `{w}`"));
                    return (Vec::new(), None);
                }
                state.pane = Pane::Releases;
                state.focus = Focus::Pane;
            }
            (effects, Some(Action::Rollback))
        }
    }
}

/// Run the palette command `text` (or the completion `selected` when it names none).
fn run_command(state: &mut State, text: &str, selected: usize) -> Outcome {
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("");
    let arg = words.next().map(str::to_string);
    let more: Vec<String> = words.map(str::to_string).collect();
    let name = match COMMANDS.iter().find(|c| c.0 == first) {
        Some(c) => c.0,
        None => match COMMANDS.iter().find(|c| {
            completions(first, state)
                .get(selected)
                .map(|x| x.0.as_str())
                == Some(c.0)
        }) {
            Some(c) => c.0,
            None => {
                state.status = Some(format!("unknown command `{first}`; press : and tab"));
                return (Vec::new(), None);
            }
        },
    };
    let then = match name {
        "build" => {
            if let Some(a) = arg {
                if !state.stacks.iter().any(|s| s.name == a) {
                    state.status = Some(format!("no stack named `{a}`"));
                    return (Vec::new(), None);
                }
                state.select_stack(&a);
                return (vec![Effect::Reload], Some(Action::Build));
            }
            Action::Build
        }
        "builds" => Action::PaneBuilds,
        "logs" => Action::PaneLog,
        "manifest" => Action::PaneManifest,
        "updates" => Action::PaneUpdates,
        "releases" => Action::PaneReleases,
        "jobs" => Action::Jobs,
        "help" => Action::Help,
        "check" => Action::CheckUpdates,
        "rebuild" => Action::Rebuild,
        "lock" => return (lock(state, arg.as_deref() == Some("update")), None),
        "deploy" | "rollback" | "diff" => {
            if let Some(a) = &arg {
                if !state.stacks.iter().any(|s| &s.name == a) {
                    state.status = Some(format!("no stack named `{a}`"));
                    return (Vec::new(), None);
                }
                if state.selected_stack() != Some(a.as_str()) {
                    state.select_stack(a);
                    if !more.is_empty() {
                        state.status =
                            Some(format!("{a} is selected now; its builds load: try again"));
                        return (vec![Effect::Reload], None);
                    }
                }
            }
            return with_args(state, name, arg, &more);
        }
        "new" => return new_stack(state, arg, more.first().cloned()),
        "problems" => {
            if !show_config_problems(state) {
                state.status = Some("no config file problems".into());
            }
            return (Vec::new(), None);
        }
        "message" => {
            match state.last_status.clone() {
                Some(m) => {
                    state.overlay = Some(Overlay::detail(
                        "Message".into(),
                        m.lines().map(str::to_string).collect(),
                    ))
                }
                None => state.status = Some("no message yet".into()),
            }
            return (Vec::new(), None);
        }
        "quit" => Action::Quit,
        _ => return (Vec::new(), None),
    };
    (Vec::new(), Some(then))
}
