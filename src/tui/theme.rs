//! Colours and text attributes. Defaults use the 16 ANSI colours; `theme.toml` in
//! `$XDG_CONFIG_HOME/drover/` may override any slot with a colour name (`red`,
//! `lightblue`, …), an index (`"236"`) or `#rrggbb`:
//!
//! ```toml
//! accent = "#5fafff"
//! ok = "green"
//! ```
//!
//! `#rrggbb` is used as is only when `COLORTERM` is `truecolor`/`24bit`; otherwise it is
//! mapped to the 256-colour cube, or to the 16 ANSI colours when `TERM` does not mention
//! 256 colours. With `NO_COLOR` set (to anything non-empty) no colour is emitted at all:
//! selection and emphasis stay visible through reverse video and bold.

use std::path::Path;

use ratatui::style::{Color, Modifier, Style};

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    /// `NO_COLOR`: attributes only.
    None,
    /// The 16 ANSI colours.
    Ansi16,
    /// The xterm 256-colour palette.
    Ansi256,
    /// 24-bit colour.
    TrueColor,
}

impl ColorDepth {
    /// Detect from `NO_COLOR`, `COLORTERM` and `TERM`.
    pub fn detect() -> ColorDepth {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        ColorDepth::from_env(&var("NO_COLOR"), &var("COLORTERM"), &var("TERM"))
    }

    /// Decide from the values of `NO_COLOR`, `COLORTERM` and `TERM`.
    pub fn from_env(no_color: &str, colorterm: &str, term: &str) -> ColorDepth {
        if !no_color.is_empty() {
            ColorDepth::None
        } else if matches!(colorterm, "truecolor" | "24bit") {
            ColorDepth::TrueColor
        } else if term.contains("256color") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }
}

/// The styles the renderer uses.
#[derive(Debug, Clone)]
pub struct Theme {
    /// Colour depth the styles were made for.
    pub depth: ColorDepth,
    /// Titles, the focused border, the header.
    pub accent: Style,
    /// Secondary text (ages, hints, empty states).
    pub dim: Style,
    /// Succeeded.
    pub ok: Style,
    /// Failed, errors.
    pub error: Style,
    /// Running, warnings, cancelled.
    pub warn: Style,
    /// The selected row (always reverse video, so it shows without colour).
    pub selected: Style,
    /// Search matches in the log.
    pub matched: Style,
    /// Key labels in the footer.
    pub key: Style,
    /// drover's own log lines.
    pub drover: Style,
}

const SLOTS: &[&str] = &[
    "accent", "dim", "ok", "error", "warn", "selected", "matched", "key", "drover",
];

impl Theme {
    /// The default theme for a colour depth.
    pub fn new(depth: ColorDepth) -> Theme {
        let mut t = Theme {
            depth,
            accent: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            dim: Style::new().fg(Color::DarkGray),
            ok: Style::new().fg(Color::Green),
            error: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            warn: Style::new().fg(Color::Yellow),
            selected: Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            matched: Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::UNDERLINED),
            key: Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            drover: Style::new().fg(Color::Blue),
        };
        if depth == ColorDepth::None {
            t.strip();
        }
        t
    }

    /// The theme for this terminal: defaults plus `dir/theme.toml`; the message (if any)
    /// says what was wrong with the file (defaults are kept for bad entries).
    pub fn load(dir: &Path, depth: ColorDepth) -> (Theme, Option<String>) {
        let mut t = Theme::new(depth);
        let file = dir.join("theme.toml");
        let msg = match std::fs::read_to_string(&file) {
            Ok(text) => t
                .apply_toml(&text)
                .err()
                .map(|e| format!("{}: {e} (default colours used)", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(format!("{}: {e} (default colours used)", file.display())),
        };
        if depth == ColorDepth::None {
            t.strip();
        }
        (t, msg)
    }

    /// Override slots from a theme TOML text.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), String> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut errors = Vec::new();
        for (k, v) in &doc {
            let Some(s) = v.as_str() else {
                errors.push(format!("`{k}`: expected a colour string"));
                continue;
            };
            let color = match parse_color(s) {
                Ok(c) => self.fit(c),
                Err(e) => {
                    errors.push(format!("`{k}`: {e}"));
                    continue;
                }
            };
            let slot = match k.as_str() {
                "accent" => &mut self.accent,
                "dim" => &mut self.dim,
                "ok" => &mut self.ok,
                "error" => &mut self.error,
                "warn" => &mut self.warn,
                "selected" => &mut self.selected,
                "matched" => &mut self.matched,
                "key" => &mut self.key,
                "drover" => &mut self.drover,
                _ => {
                    errors.push(format!("unknown slot `{k}` (known: {})", SLOTS.join(", ")));
                    continue;
                }
            };
            *slot = if k == "selected" || k == "matched" {
                slot.bg(color)
            } else {
                slot.fg(color)
            };
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Map a colour to what the terminal can show.
    pub fn fit(&self, c: Color) -> Color {
        match (self.depth, c) {
            (ColorDepth::TrueColor, c) => c,
            (ColorDepth::Ansi256, Color::Rgb(r, g, b)) => Color::Indexed(rgb_to_256(r, g, b)),
            (ColorDepth::Ansi16, Color::Rgb(r, g, b)) => rgb_to_16(r, g, b),
            (ColorDepth::Ansi16, Color::Indexed(i)) if i >= 16 => {
                let (r, g, b) = index_to_rgb(i);
                rgb_to_16(r, g, b)
            }
            (_, c) => c,
        }
    }

    /// Remove every colour, keeping attributes (bold, reverse, underline).
    fn strip(&mut self) {
        for s in [
            &mut self.accent,
            &mut self.dim,
            &mut self.ok,
            &mut self.error,
            &mut self.warn,
            &mut self.selected,
            &mut self.matched,
            &mut self.key,
            &mut self.drover,
        ] {
            s.fg = None;
            s.bg = None;
            s.underline_color = None;
        }
        // Without colour, matches still need to stand out.
        self.matched = self.matched.add_modifier(Modifier::REVERSED);
    }
}

fn parse_color(s: &str) -> Result<Color, String> {
    if let Some(hex) = s.strip_prefix('#') {
        if hex.len() == 6 {
            if let Ok(v) = u32::from_str_radix(hex, 16) {
                return Ok(Color::Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8));
            }
        }
        return Err(format!("bad colour `{s}` (expected #rrggbb)"));
    }
    if let Ok(i) = s.parse::<u8>() {
        return Ok(Color::Indexed(i));
    }
    s.parse::<Color>()
        .map_err(|_| format!("unknown colour `{s}` (a name like `red`, `#rrggbb` or 0-255)"))
}

fn cube(v: u8) -> u8 {
    if v < 48 {
        0
    } else if v < 115 {
        1
    } else {
        (v - 35) / 40
    }
}

/// Nearest xterm-256 index (6×6×6 cube or grey ramp).
pub fn rgb_to_256(r: u8, g: u8, b: u8) -> u8 {
    if r == g && g == b {
        if r < 8 {
            return 16;
        }
        if r > 248 {
            return 231;
        }
        return 232 + ((r as u16 - 8) * 24 / 247) as u8;
    }
    16 + 36 * cube(r) + 6 * cube(g) + cube(b)
}

fn index_to_rgb(i: u8) -> (u8, u8, u8) {
    const STEPS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    if i >= 232 {
        let v = 8 + (i - 232) * 10;
        (v, v, v)
    } else {
        let i = i - 16;
        (
            STEPS[(i / 36) as usize],
            STEPS[(i / 6 % 6) as usize],
            STEPS[(i % 6) as usize],
        )
    }
}

/// Nearest of the 16 ANSI colours (by squared distance to the xterm defaults).
pub fn rgb_to_16(r: u8, g: u8, b: u8) -> Color {
    const PALETTE: [(Color, (i32, i32, i32)); 16] = [
        (Color::Black, (0, 0, 0)),
        (Color::Red, (205, 0, 0)),
        (Color::Green, (0, 205, 0)),
        (Color::Yellow, (205, 205, 0)),
        (Color::Blue, (0, 0, 238)),
        (Color::Magenta, (205, 0, 205)),
        (Color::Cyan, (0, 205, 205)),
        (Color::Gray, (229, 229, 229)),
        (Color::DarkGray, (127, 127, 127)),
        (Color::LightRed, (255, 0, 0)),
        (Color::LightGreen, (0, 255, 0)),
        (Color::LightYellow, (255, 255, 0)),
        (Color::LightBlue, (92, 92, 255)),
        (Color::LightMagenta, (255, 0, 255)),
        (Color::LightCyan, (0, 255, 255)),
        (Color::White, (255, 255, 255)),
    ];
    let (r, g, b) = (r as i32, g as i32, b as i32);
    PALETTE
        .iter()
        .min_by_key(|(_, (pr, pg, pb))| (pr - r).pow(2) + (pg - g).pow(2) + (pb - b).pow(2))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_detection() {
        assert_eq!(
            ColorDepth::from_env("1", "truecolor", "xterm-256color"),
            ColorDepth::None
        );
        assert_eq!(
            ColorDepth::from_env("", "truecolor", "xterm"),
            ColorDepth::TrueColor
        );
        assert_eq!(
            ColorDepth::from_env("", "", "tmux-256color"),
            ColorDepth::Ansi256
        );
        assert_eq!(ColorDepth::from_env("", "", "xterm"), ColorDepth::Ansi16);
    }

    #[test]
    fn fallback_and_no_color() {
        let mut t = Theme::new(ColorDepth::Ansi256);
        t.apply_toml("accent = \"#ff0000\"").unwrap();
        assert_eq!(t.accent.fg, Some(Color::Indexed(196)));
        let mut t = Theme::new(ColorDepth::Ansi16);
        t.apply_toml("accent = \"#00ff00\"").unwrap();
        assert_eq!(t.accent.fg, Some(Color::LightGreen));
        let mut t = Theme::new(ColorDepth::TrueColor);
        t.apply_toml("accent = \"#010203\"").unwrap();
        assert_eq!(t.accent.fg, Some(Color::Rgb(1, 2, 3)));
        let t = Theme::new(ColorDepth::None);
        assert_eq!(t.ok.fg, None);
        assert!(t.selected.add_modifier.contains(Modifier::REVERSED));
        let mut t = Theme::new(ColorDepth::TrueColor);
        let e = t
            .apply_toml("bogus = \"red\"\nok = \"nocolour\"")
            .unwrap_err();
        assert!(
            e.contains("unknown slot `bogus`") && e.contains("nocolour"),
            "{e}"
        );
        assert!(t.apply_toml("= broken").is_err());
    }
}
