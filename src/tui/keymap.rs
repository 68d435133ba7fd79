//! Key bindings: every action has a name, a description and default keys (k9s/lazygit
//! conventions); `$XDG_CONFIG_HOME/drover/keymap.toml` may rebind any of them:
//!
//! ```toml
//! [keys]
//! build = ["b", "ctrl-b"]
//! quit = ["q"]
//! ```
//!
//! Key syntax: a character (`b`, `G`, `?`), or a name (`enter`, `esc`, `tab`,
//! `backtab`, `up`, `down`, `left`, `right`, `pageup`, `pagedown`, `home`, `end`,
//! `space`), optionally prefixed by `ctrl-` or `alt-`.

use std::collections::HashMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does. The same action may mean slightly different things per pane (e.g.
/// [`Action::Filter`] searches inside a log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `?`: the help overlay.
    Help,
    /// `/`: filter the current list, search in a log.
    Filter,
    /// `:`: the command palette.
    Palette,
    /// `tab`: next pane.
    NextPane,
    /// `shift-tab`: previous pane.
    PrevPane,
    /// `1`: Builds.
    PaneBuilds,
    /// `2`: Log.
    PaneLog,
    /// `3`: Manifest.
    PaneManifest,
    /// `4`: Updates.
    PaneUpdates,
    /// `5`: Releases.
    PaneReleases,
    /// `6`: Logs (the runtime log).
    PaneLogs,
    /// `H`: hide/show the health check's requests in Logs.
    HideHealth,
    /// `v`: the next release filter in Logs.
    ReleaseFilter,
    /// `i`: the next instance filter in Logs.
    InstanceFilter,
    /// `L` in Releases: the selected release's runtime log.
    ReleaseLogs,
    /// `j`/down.
    Down,
    /// `k`/up.
    Up,
    /// `h`/left: focus the stacks list.
    Left,
    /// `l`/right: focus the pane.
    Right,
    /// `g`: first row.
    Top,
    /// `G`: last row.
    Bottom,
    /// PgUp.
    PageUp,
    /// PgDn.
    PageDown,
    /// `enter`: details.
    Enter,
    /// `esc`/`q`: back, or quit at the top level.
    Back,
    /// `ctrl-c`: quit from anywhere (asks when jobs run).
    Quit,
    /// `b`: build the selected stack.
    Build,
    /// `u`: check for updates.
    CheckUpdates,
    /// `r`: rebuild applying pending updates.
    Rebuild,
    /// `d`: deploy.
    Deploy,
    /// `R`: rollback.
    Rollback,
    /// `f`: follow the log.
    Follow,
    /// `w`: wrap log lines.
    Wrap,
    /// `n`: next search match.
    NextMatch,
    /// `N`: previous search match.
    PrevMatch,
    /// `F`: log fullscreen.
    Fullscreen,
    /// `J`: background jobs.
    Jobs,
    /// `x`: cancel the selected job.
    CancelJob,
    /// `s`: sort the manifest by the next column.
    Sort,
    /// `S`: reverse the sort order.
    SortReverse,
    /// `D`: what a build or release changes ([`crate::diff`]).
    Diff,
    /// `A`: the selected stack's audit log.
    Audit,
    /// `X`: stop the stack (drain and stop its instances).
    StopStack,
    /// `O`: start a stopped stack again.
    StartStack,
    /// `+`: one instance more.
    ScaleUp,
    /// `-`: one instance less.
    ScaleDown,
    /// `T`: rolling restart.
    RestartStack,
}

/// Every action with its config name, description and default keys.
pub const ACTIONS: &[(Action, &str, &str, &[&str])] = &[
    (Action::Help, "help", "help (type to filter)", &["?"]),
    (
        Action::Filter,
        "filter",
        "filter the list / search the log",
        &["/"],
    ),
    (Action::Palette, "palette", "command palette", &[":"]),
    (Action::NextPane, "next_pane", "next pane", &["tab"]),
    (Action::PrevPane, "prev_pane", "previous pane", &["backtab"]),
    (Action::PaneBuilds, "pane_builds", "Builds pane", &["1"]),
    (Action::PaneLog, "pane_log", "Log pane", &["2"]),
    (
        Action::PaneManifest,
        "pane_manifest",
        "Manifest pane",
        &["3"],
    ),
    (Action::PaneUpdates, "pane_updates", "Updates pane", &["4"]),
    (
        Action::PaneReleases,
        "pane_releases",
        "Releases pane",
        &["5"],
    ),
    (Action::PaneLogs, "pane_logs", "Logs pane (runtime)", &["6"]),
    (
        Action::HideHealth,
        "hide_health",
        "hide health checks (Logs)",
        &["H"],
    ),
    (
        Action::ReleaseFilter,
        "release_filter",
        "next release filter (Logs)",
        &["v"],
    ),
    (
        Action::ReleaseLogs,
        "release_logs",
        "a release's runtime log (Releases)",
        &["L"],
    ),
    (
        Action::InstanceFilter,
        "instance_filter",
        "next instance filter (Logs)",
        &["i"],
    ),
    (Action::Down, "down", "move down", &["j", "down"]),
    (Action::Up, "up", "move up", &["k", "up"]),
    (Action::Left, "left", "focus stacks", &["h", "left"]),
    (Action::Right, "right", "focus pane", &["l", "right"]),
    (Action::Top, "top", "first row", &["g", "home"]),
    (Action::Bottom, "bottom", "last row", &["G", "end"]),
    (Action::PageUp, "page_up", "page up", &["pageup", "ctrl-u"]),
    (
        Action::PageDown,
        "page_down",
        "page down",
        &["pagedown", "ctrl-d"],
    ),
    (Action::Enter, "enter", "details", &["enter"]),
    (
        Action::Back,
        "back",
        "back (q quits at the top)",
        &["esc", "q"],
    ),
    (Action::Quit, "quit", "quit", &["ctrl-c"]),
    (Action::Build, "build", "build the stack", &["b"]),
    (Action::CheckUpdates, "check", "check for updates", &["u"]),
    (Action::Rebuild, "rebuild", "rebuild with updates", &["r"]),
    (Action::Deploy, "deploy", "deploy", &["d"]),
    (Action::Rollback, "rollback", "roll back", &["R"]),
    (Action::Follow, "follow", "follow the log", &["f"]),
    (Action::Wrap, "wrap", "wrap log lines", &["w"]),
    (Action::NextMatch, "next_match", "next match", &["n"]),
    (Action::PrevMatch, "prev_match", "previous match", &["N"]),
    (Action::Fullscreen, "fullscreen", "log fullscreen", &["F"]),
    (Action::Jobs, "jobs", "background jobs", &["J"]),
    (
        Action::CancelJob,
        "cancel_job",
        "cancel the selected job",
        &["x"],
    ),
    (Action::Sort, "sort", "sort by next column", &["s"]),
    (
        Action::SortReverse,
        "sort_reverse",
        "reverse the sort",
        &["S"],
    ),
    (
        Action::Diff,
        "diff",
        "what changes (build vs live, release vs the one before)",
        &["D"],
    ),
    (Action::Audit, "audit", "audit log of the stack", &["A"]),
    (Action::StopStack, "stop", "stop the stack", &["X"]),
    (Action::StartStack, "start", "start a stopped stack", &["O"]),
    (Action::ScaleUp, "scale_up", "one instance more", &["+"]),
    (Action::ScaleDown, "scale_down", "one instance less", &["-"]),
    (Action::RestartStack, "restart", "rolling restart", &["T"]),
];

/// A key with modifiers, normalised so that `G` and `shift-g` compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Only CONTROL and ALT are kept.
    pub mods: KeyModifiers,
}

impl Key {
    /// Normalise a crossterm key event.
    pub fn from_event(e: &KeyEvent) -> Key {
        let mods = e.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
        let code = match e.code {
            KeyCode::BackTab => KeyCode::BackTab,
            KeyCode::Tab if e.modifiers.contains(KeyModifiers::SHIFT) => KeyCode::BackTab,
            c => c,
        };
        Key { code, mods }
    }

    /// Parse `b`, `G`, `ctrl-c`, `pagedown`, …
    pub fn parse(s: &str) -> Result<Key, String> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = s;
        loop {
            if let Some(r) = rest.strip_prefix("ctrl-").filter(|r| !r.is_empty()) {
                mods |= KeyModifiers::CONTROL;
                rest = r;
            } else if let Some(r) = rest.strip_prefix("alt-").filter(|r| !r.is_empty()) {
                mods |= KeyModifiers::ALT;
                rest = r;
            } else {
                break;
            }
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => KeyCode::Char(c),
            _ => match rest.to_ascii_lowercase().as_str() {
                "enter" | "return" => KeyCode::Enter,
                "esc" | "escape" => KeyCode::Esc,
                "tab" => KeyCode::Tab,
                "backtab" | "shift-tab" => KeyCode::BackTab,
                "up" => KeyCode::Up,
                "down" => KeyCode::Down,
                "left" => KeyCode::Left,
                "right" => KeyCode::Right,
                "pageup" | "pgup" => KeyCode::PageUp,
                "pagedown" | "pgdn" => KeyCode::PageDown,
                "home" => KeyCode::Home,
                "end" => KeyCode::End,
                "space" => KeyCode::Char(' '),
                "backspace" => KeyCode::Backspace,
                "delete" | "del" => KeyCode::Delete,
                _ => return Err(format!("unknown key `{s}`")),
            },
        };
        Ok(Key { code, mods })
    }

    /// How the key is shown in the footer and help: `b`, `ctrl-c`, `PgDn`.
    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "enter".into(),
            KeyCode::Esc => "esc".into(),
            KeyCode::Tab => "tab".into(),
            KeyCode::BackTab => "S-tab".into(),
            KeyCode::Up => "up".into(),
            KeyCode::Down => "down".into(),
            KeyCode::Left => "left".into(),
            KeyCode::Right => "right".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "home".into(),
            KeyCode::End => "end".into(),
            KeyCode::Backspace => "bksp".into(),
            KeyCode::Delete => "del".into(),
            other => format!("{other:?}"),
        };
        let mut s = String::new();
        if self.mods.contains(KeyModifiers::CONTROL) {
            s.push_str("ctrl-");
        }
        if self.mods.contains(KeyModifiers::ALT) {
            s.push_str("alt-");
        }
        s + &base
    }
}

/// Key → action, plus action → keys for the footer and help.
#[derive(Debug, Clone)]
pub struct Keymap {
    by_key: HashMap<Key, Action>,
    keys: HashMap<Action, Vec<Key>>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut m = Keymap {
            by_key: HashMap::new(),
            keys: HashMap::new(),
        };
        for (action, _, _, keys) in ACTIONS {
            let parsed: Vec<Key> = keys.iter().filter_map(|k| Key::parse(k).ok()).collect();
            m.set(*action, parsed);
        }
        m
    }
}

impl Keymap {
    fn set(&mut self, action: Action, keys: Vec<Key>) {
        if let Some(old) = self.keys.remove(&action) {
            for k in old {
                if self.by_key.get(&k) == Some(&action) {
                    self.by_key.remove(&k);
                }
            }
        }
        for k in &keys {
            // A key taken over by another action is removed from the old one.
            if let Some(prev) = self.by_key.insert(*k, action) {
                if prev != action {
                    if let Some(v) = self.keys.get_mut(&prev) {
                        v.retain(|x| x != k);
                    }
                }
            }
        }
        self.keys.insert(action, keys);
    }

    /// The action bound to a key event.
    pub fn action(&self, e: &KeyEvent) -> Option<Action> {
        self.by_key.get(&Key::from_event(e)).copied()
    }

    /// The keys of an action, as labels joined by `/` (`j/down`).
    pub fn label(&self, action: Action) -> String {
        self.keys
            .get(&action)
            .map(|ks| ks.iter().map(Key::label).collect::<Vec<_>>().join("/"))
            .unwrap_or_default()
    }

    /// The key that quits from the top: the first `back` key other than `esc` (which never
    /// quits), else the first `quit` key (`ctrl-c`).
    pub fn quit_key(&self) -> String {
        self.keys
            .get(&Action::Back)
            .and_then(|ks| ks.iter().find(|k| k.code != KeyCode::Esc))
            .map(Key::label)
            .unwrap_or_else(|| self.first(Action::Quit))
    }

    /// The first key of an action, for the footer (`?`).
    pub fn first(&self, action: Action) -> String {
        self.keys
            .get(&action)
            .and_then(|ks| ks.first())
            .map(Key::label)
            .unwrap_or_else(|| "(unbound)".into())
    }

    /// Apply a keymap TOML text over the defaults. Errors name the line and the problem;
    /// valid entries before and after a bad one still apply.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for (k, v) in &doc {
            if k != "keys" {
                errors.push(format!("unknown section `{k}` (expected [keys])"));
            }
            let _ = v;
        }
        if let Some(keys) = doc.get("keys") {
            let Some(table) = keys.as_table() else {
                return Err("`keys` must be a table: [keys]".into());
            };
            for (name, v) in table {
                let Some((action, ..)) = ACTIONS.iter().find(|a| a.1 == name) else {
                    errors.push(format!("unknown action `{name}`"));
                    continue;
                };
                let list: Vec<&str> = match v {
                    toml::Value::String(s) => vec![s.as_str()],
                    toml::Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
                    _ => {
                        errors.push(format!("`{name}`: expected a key or a list of keys"));
                        continue;
                    }
                };
                let mut parsed = Vec::new();
                for s in list {
                    match Key::parse(s) {
                        Ok(k) => parsed.push(k),
                        Err(e) => errors.push(format!("`{name}`: {e}")),
                    }
                }
                self.set(*action, parsed);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Defaults, overridden by `dir/keymap.toml` when it exists. The message (if any)
    /// says what was wrong; the defaults (and every valid entry) still apply.
    pub fn load(dir: &Path) -> (Keymap, Option<String>) {
        let mut m = Keymap::default();
        let file = dir.join("keymap.toml");
        let msg = match std::fs::read_to_string(&file) {
            Ok(text) => m
                .apply_toml(&text)
                .err()
                .map(|e| format!("{}: {e} (defaults used for the rest)", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("{}: {e} (default keys used)", file.display())),
        };
        (m, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(c: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(c, m)
    }

    #[test]
    fn defaults_and_shift() {
        let m = Keymap::default();
        assert_eq!(
            m.action(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            m.action(&ev(KeyCode::Tab, KeyModifiers::SHIFT)),
            Some(Action::PrevPane)
        );
        assert_eq!(
            m.action(&ev(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(m.label(Action::Down), "j/down");
    }

    #[test]
    fn remap_and_errors() {
        let mut m = Keymap::default();
        m.apply_toml("[keys]\nbuild = [\"B\"]\ndown = \"ctrl-n\"\n")
            .unwrap();
        assert_eq!(
            m.action(&ev(KeyCode::Char('B'), KeyModifiers::SHIFT)),
            Some(Action::Build)
        );
        assert_eq!(m.action(&ev(KeyCode::Char('b'), KeyModifiers::NONE)), None);
        assert_eq!(
            m.action(&ev(KeyCode::Char('n'), KeyModifiers::CONTROL)),
            Some(Action::Down)
        );
        let err = m
            .apply_toml("[keys]\nbogus = \"x\"\nwrap = \"nokey\"\n")
            .unwrap_err();
        assert!(err.contains("unknown action `bogus`"), "{err}");
        assert!(err.contains("unknown key `nokey`"), "{err}");
        assert!(m.apply_toml("[keys\n").is_err());
    }
}
