//! Global settings: `CONFIG/drover.toml` (optional; every key has a default).
//!
//! ```toml
//! [images]
//! keep = 3   # images kept per stack by `drover prune`, >= 1
//! ```

use std::fs;
use std::io;
use std::path::Path;

use crate::stack::parse::{Checker, Field};
use crate::stack::Diagnostic;

/// Parsed `drover.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How many images `drover prune` keeps per stack (default 3).
    pub keep_images: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { keep_images: 3 }
    }
}

const TOP_KEYS: &[&str] = &["images"];
const IMAGES_KEYS: &[&str] = &["keep"];

/// Load `drover.toml`; a missing file gives the defaults.
///
/// Errors: a file that exists but cannot be read gives one diagnostic at 1:1; otherwise
/// see [`parse`].
pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    match fs::read_to_string(path) {
        Ok(src) => parse(path, &src),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read config file: {e}"),
            hint: Some("check that the file is readable UTF-8 text, or remove it".into()),
        }]),
    }
}

/// Parse the text of `drover.toml` (`file` is only used in diagnostics).
///
/// Errors: TOML syntax errors, unknown keys, wrong types and `images.keep < 1`, each
/// located at the offending key or value; every problem is reported, sorted by position.
pub fn parse(file: &Path, src: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut chk = Checker::new(file, src);
    let Some(doc) = chk.parse() else {
        return Err(chk.into_diagnostics());
    };
    let root = chk.root(&doc);
    chk.check_keys(&root, TOP_KEYS);

    let mut config = Config::default();
    if let Some((images, _)) = chk.table(&root, "images", "[images]", "[images]").present() {
        chk.check_keys(&images, IMAGES_KEYS);
        if let Field::Present(keep, span) = chk.integer(&images, "keep", "keep = 3") {
            match usize::try_from(keep) {
                Ok(k) if k >= 1 => config.keep_images = k,
                _ => chk.error(
                    &span,
                    format!("`keep` in [images] must be at least 1, got {keep}"),
                    "keep at least the current image, e.g. `keep = 3`",
                ),
            }
        }
    }

    if chk.has_errors() {
        Err(chk.into_diagnostics())
    } else {
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(src: &str) -> Result<Config, Vec<Diagnostic>> {
        parse(Path::new("drover.toml"), src)
    }

    #[test]
    fn missing_file_gives_defaults() {
        let cfg = load(Path::new("/nonexistent/drover/drover.toml")).expect("defaults");
        assert_eq!(cfg, Config::default());
        assert_eq!(cfg.keep_images, 3);
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse_str("").expect("defaults"), Config::default());
        assert_eq!(
            parse_str("[images]\n").expect("defaults"),
            Config::default()
        );
    }

    #[test]
    fn valid_keep() {
        let cfg = parse_str("[images]\nkeep = 5\n").expect("valid");
        assert_eq!(cfg.keep_images, 5);
    }

    #[test]
    fn shipped_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/drover.toml");
        assert_eq!(load(&path).expect("valid").keep_images, 3);
    }

    #[test]
    fn unknown_keys() {
        let errs = parse_str("colour = 1\n[images]\nkepe = 2\n").expect_err("invalid");
        assert_eq!(errs.len(), 2);
        assert_eq!((errs[0].line, errs[0].col), (1, 1));
        assert_eq!(errs[0].message, "unknown top-level key `colour`");
        assert_eq!((errs[1].line, errs[1].col), (3, 1));
        assert_eq!(errs[1].message, "unknown key `kepe` in [images]");
        assert!(errs[1]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `keep`?"));
    }

    #[test]
    fn keep_zero_and_wrong_type() {
        let errs = parse_str("[images]\nkeep = 0\n").expect_err("invalid");
        assert_eq!((errs[0].line, errs[0].col), (2, 8));
        assert_eq!(
            errs[0].message,
            "`keep` in [images] must be at least 1, got 0"
        );

        let errs = parse_str("[images]\nkeep = \"3\"\n").expect_err("invalid");
        assert_eq!((errs[0].line, errs[0].col), (2, 8));
        assert_eq!(
            errs[0].message,
            "`keep` in [images] must be an integer, got string"
        );
    }

    #[test]
    fn syntax_error() {
        let errs = parse_str("[images\nkeep = 3\n").expect_err("invalid");
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].col), (1, 8));
        assert!(
            errs[0].message.starts_with("TOML syntax error:"),
            "{}",
            errs[0].message
        );
    }
}
