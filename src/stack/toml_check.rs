//! A span-aware TOML checker: walks a document parsed with [`toml::de::DeTable`] (which keeps
//! the byte span of every key and value), reads typed fields and records every problem as a
//! [`Diagnostic`] at its exact `LINE:COL`, with "did you mean" hints for unknown keys.
//!
//! Stack files and `drover.toml` (`crate::config`) are both checked with it. It lives under
//! `stack/` beside [`Diagnostic`], the type it produces; `config` already looks down here.

use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::{Diagnostic, Severity};

/// Outcome of reading one key of a table.
pub(crate) enum Field<T> {
    /// The key is not there.
    Absent,
    /// The key is there but unusable; a diagnostic has already been recorded.
    Invalid,
    /// The key's value, and the byte span of that value.
    Present(T, Range<usize>),
}

impl<T> Field<T> {
    /// The value and its span, if present and valid.
    pub(crate) fn present(self) -> Option<(T, Range<usize>)> {
        match self {
            Field::Present(v, s) => Some((v, s)),
            _ => None,
        }
    }

    pub(crate) fn is_invalid(&self) -> bool {
        matches!(self, Field::Invalid)
    }
}

/// A TOML table being validated, with the label used in messages (`[base]`,
/// `track.apt[0]`, or empty for the top level) and where it starts (header or `{`).
pub(crate) struct Tbl<'a, 'i> {
    pub(crate) label: String,
    pub(crate) start: usize,
    pub(crate) table: &'a DeTable<'i>,
}

impl<'a, 'i> Tbl<'a, 'i> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.label.is_empty()
    }

    /// `" in [base]"`, or nothing at the top level.
    pub(crate) fn in_(&self) -> String {
        if self.is_root() {
            String::new()
        } else {
            format!(" in {}", self.label)
        }
    }

    /// Where to add a key, for hints.
    pub(crate) fn under(&self) -> String {
        if self.is_root() {
            " at the top of the file".to_string()
        } else {
            format!(" under {}", self.label)
        }
    }
}

/// Collects diagnostics for one file and converts byte spans to line/column.
pub(crate) struct Checker<'s> {
    file: &'s Path,
    src: &'s str,
    diags: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl<'s> Checker<'s> {
    pub(crate) fn new(file: &'s Path, src: &'s str) -> Self {
        Checker {
            file,
            src,
            diags: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// 1-based (line, column in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut off = offset.min(self.src.len());
        while off > 0 && !self.src.is_char_boundary(off) {
            off -= 1;
        }
        let before = self.src.get(..off).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before.get(line_start..).unwrap_or("").chars().count() + 1;
        (line, col)
    }

    /// Record a problem located at the start of `span`.
    pub(crate) fn error(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let d = self.located(span, message.into(), hint.into(), Severity::Error);
        self.diags.push(d);
    }

    /// Record a legitimate but risky value located at the start of `span`: it does not
    /// refuse the file.
    pub(crate) fn warn(
        &mut self,
        span: &Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let d = self.located(span, message.into(), hint.into(), Severity::Warning);
        self.warnings.push(d);
    }

    fn located(
        &self,
        span: &Range<usize>,
        message: String,
        hint: String,
        severity: Severity,
    ) -> Diagnostic {
        let (line, col) = self.position(span.start);
        Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            message,
            hint: Some(hint),
            severity,
        }
    }

    /// The warnings recorded so far, ordered by position.
    pub(crate) fn take_warnings(&mut self) -> Vec<Diagnostic> {
        let mut w = std::mem::take(&mut self.warnings);
        w.sort_by_key(|d| (d.line, d.col));
        w
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.diags.is_empty()
    }

    /// All diagnostics, ordered by position.
    pub(crate) fn into_diagnostics(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.line, d.col));
        self.diags
    }

    /// Parse the source as a TOML document; a syntax error is recorded and gives `None`.
    pub(crate) fn parse(&mut self) -> Option<Spanned<DeTable<'s>>> {
        match DeTable::parse(self.src) {
            Ok(doc) => Some(doc),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                self.error(
                    &span,
                    format!("TOML syntax error: {}", e.message()),
                    "fix the TOML syntax at this position (see https://toml.io/en/v1.0.0)",
                );
                None
            }
        }
    }

    /// The document's top-level table.
    pub(crate) fn root<'a>(&self, doc: &'a Spanned<DeTable<'s>>) -> Tbl<'a, 's> {
        Tbl {
            label: String::new(),
            start: 0,
            table: doc.get_ref(),
        }
    }

    /// Report every key of `t` that is not in `allowed`.
    pub(crate) fn check_keys(&mut self, t: &Tbl<'_, '_>, allowed: &[&str]) {
        for (k, _) in t.table.iter() {
            let key: &str = k.get_ref().as_ref();
            if allowed.contains(&key) {
                continue;
            }
            let message = if t.is_root() {
                format!("unknown top-level key `{key}`")
            } else {
                format!("unknown key `{key}` in {}", t.label)
            };
            let mut hint = String::new();
            if let Some(close) = closest(key, allowed) {
                hint.push_str(&format!("did you mean `{close}`? "));
            }
            hint.push_str(&format!("expected one of: {}", allowed.join(", ")));
            self.error(&k.span(), message, hint);
        }
    }

    /// Report a required key that is absent, at the table header (1:1 for the top level).
    pub(crate) fn missing(&mut self, t: &Tbl<'_, '_>, key: &str, example: &str) {
        let span = t.start..t.start;
        let message = format!("missing field `{key}`{}", t.in_());
        self.error(&span, message, format!("add `{example}`{}", t.under()));
    }

    pub(crate) fn wrong_type(
        &mut self,
        what: &str,
        v: &Spanned<DeValue<'_>>,
        expected: &str,
        example: &str,
    ) {
        self.error(
            &v.span(),
            format!("{what} must be {expected}, got {}", v.get_ref().type_str()),
            format!("write it as {expected}, e.g. `{example}`"),
        );
    }

    /// A string value.
    pub(crate) fn string(&mut self, t: &Tbl<'_, '_>, key: &str, example: &str) -> Field<String> {
        let Some(v) = t.get(key) else {
            return Field::Absent;
        };
        match v.get_ref() {
            DeValue::String(s) => Field::Present(s.to_string(), v.span()),
            _ => {
                self.wrong_type(&format!("`{key}`{}", t.in_()), v, "a string", example);
                Field::Invalid
            }
        }
    }

    /// A boolean value.
    pub(crate) fn boolean(&mut self, t: &Tbl<'_, '_>, key: &str, example: &str) -> Field<bool> {
        let Some(v) = t.get(key) else {
            return Field::Absent;
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Field::Present(*b, v.span()),
            _ => {
                self.wrong_type(&format!("`{key}`{}", t.in_()), v, "a boolean", example);
                Field::Invalid
            }
        }
    }

    /// An integer value (any TOML radix).
    pub(crate) fn integer(&mut self, t: &Tbl<'_, '_>, key: &str, example: &str) -> Field<i64> {
        let Some(v) = t.get(key) else {
            return Field::Absent;
        };
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Field::Present(n, v.span()),
                Err(_) => {
                    self.error(
                        &v.span(),
                        format!("`{key}`{} is too large: {i}", t.in_()),
                        format!("use a 64-bit integer, e.g. `{example}`"),
                    );
                    Field::Invalid
                }
            },
            _ => {
                self.wrong_type(&format!("`{key}`{}", t.in_()), v, "an integer", example);
                Field::Invalid
            }
        }
    }

    /// A number value: a TOML float, or an integer taken as one (`1` for `1.0`).
    pub(crate) fn number(&mut self, t: &Tbl<'_, '_>, key: &str, example: &str) -> Field<f64> {
        let Some(v) = t.get(key) else {
            return Field::Absent;
        };
        let n = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.wrong_type(&format!("`{key}`{}", t.in_()), v, "a number", example);
                return Field::Invalid;
            }
        };
        match n {
            Some(n) if n.is_finite() => Field::Present(n, v.span()),
            _ => {
                self.error(
                    &v.span(),
                    format!("`{key}`{} is not a finite number", t.in_()),
                    format!("write a plain number, e.g. `{example}`"),
                );
                Field::Invalid
            }
        }
    }

    /// A sub-table, labelled `label` in messages.
    pub(crate) fn table<'a, 'i>(
        &mut self,
        t: &Tbl<'a, 'i>,
        key: &str,
        label: &str,
        example: &str,
    ) -> Field<Tbl<'a, 'i>> {
        let Some(v) = t.get(key) else {
            return Field::Absent;
        };
        match v.get_ref() {
            DeValue::Table(inner) => Field::Present(
                Tbl {
                    label: label.to_string(),
                    start: v.span().start,
                    table: inner,
                },
                v.span(),
            ),
            _ => {
                self.wrong_type(&format!("`{key}`{}", t.in_()), v, "a table", example);
                Field::Invalid
            }
        }
    }

    pub(crate) fn array<'a, 'i>(
        &mut self,
        t: &Tbl<'a, 'i>,
        key: &str,
        example: &str,
    ) -> Field<&'a [Spanned<DeValue<'i>>]> {
        let Some(v) = t.get(key) else {
            return Field::Absent;
        };
        match v.get_ref() {
            DeValue::Array(a) => Field::Present(&a[..], v.span()),
            _ => {
                self.wrong_type(&format!("`{key}`{}", t.in_()), v, "an array", example);
                Field::Invalid
            }
        }
    }

    /// An array of strings; elements of another type are reported and skipped.
    pub(crate) fn strings(
        &mut self,
        t: &Tbl<'_, '_>,
        key: &str,
        example: &str,
    ) -> Field<Vec<(String, Range<usize>)>> {
        let (items, span) = match self.array(t, key, example) {
            Field::Present(a, s) => (a, s),
            Field::Absent => return Field::Absent,
            Field::Invalid => return Field::Invalid,
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.wrong_type(
                    &format!("`{key}[{i}]`{}", t.in_()),
                    item,
                    "a string",
                    example,
                ),
            }
        }
        Field::Present(out, span)
    }

    /// An array of tables (inline `{ ... }` or `[[key]]`); others are reported and skipped.
    pub(crate) fn tables<'a, 'i>(
        &mut self,
        t: &Tbl<'a, 'i>,
        key: &str,
        prefix: &str,
        example: &str,
    ) -> Field<Vec<Tbl<'a, 'i>>> {
        let (items, span) = match self.array(t, key, example) {
            Field::Present(a, s) => (a, s),
            Field::Absent => return Field::Absent,
            Field::Invalid => return Field::Invalid,
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let label = format!("{prefix}[{i}]");
            match item.get_ref() {
                DeValue::Table(inner) => out.push(Tbl {
                    label,
                    start: item.span().start,
                    table: inner,
                }),
                _ => self.wrong_type(&format!("`{label}`"), item, "a table", example),
            }
        }
        Field::Present(out, span)
    }

    /// `field` if present; reports it as missing (at the table header) when absent.
    pub(crate) fn required<T>(
        &mut self,
        t: &Tbl<'_, '_>,
        key: &str,
        field: Field<T>,
        example: &str,
    ) -> Option<(T, Range<usize>)> {
        match field {
            Field::Present(v, s) => Some((v, s)),
            Field::Absent => {
                self.missing(t, key, example);
                None
            }
            Field::Invalid => None,
        }
    }
}

/// The allowed key closest to `key` (Levenshtein distance in characters at most 2; the first
/// of equals wins), for "did you mean" hints.
fn closest<'a>(key: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::levenshtein(key, a), *a))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}
