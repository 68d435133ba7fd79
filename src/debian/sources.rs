//! The apt repositories configured inside an image, and the keys that sign them, as a build
//! script may leave them: `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.list`
//! (one-line format, `deb [opt=val …] URI SUITE COMPONENT…`) and
//! `/etc/apt/sources.list.d/*.sources` (deb822 format), both described in
//! sources.list(5). Keys come from each entry's `signed-by` (a keyring file in the image, or
//! for deb822 an inline ASCII-armoured key block); without one, apt trusts every key in
//! `/etc/apt/trusted.gpg` and `/etc/apt/trusted.gpg.d/*.gpg|*.asc`, and so does drover.

use anyhow::{bail, Context, Result};
use deb822_fast::borrowed::parse_borrowed;
use serde::{Deserialize, Serialize};

use super::signature::Keyring;
use crate::manifest::rootfs::RootView;
use crate::stack::AptSource;

/// The key material a repository is verified with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoKey {
    /// Where it came from: `signed-by /usr/share/keyrings/x.gpg`, `inline Signed-By in
    /// /etc/apt/sources.list.d/x.sources:3`, or `/etc/apt/trusted.gpg.d/*` (the files).
    pub from: String,
    /// Uppercase hex fingerprints of its primary keys.
    pub fingerprints: Vec<String>,
    /// The keys as binary OpenPGP packets.
    pub data: Vec<u8>,
}

/// One repository (one suite of one URI) configured in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRepo {
    /// Base URI without trailing slash, e.g. `https://vendor.example/apt`.
    pub uri: String,
    /// Suite or codename.
    pub suite: String,
    /// Components.
    pub components: Vec<String>,
    /// Architectures it is limited to (`arch=` / `Architectures:`); empty = all.
    pub architectures: Vec<String>,
    /// Its signing keys (empty `data` when it is `trusted=yes` and no key was found).
    pub key: RepoKey,
    /// apt's `trusted=yes` / `Trusted: yes`: apt accepts it unsigned, so drover checks its
    /// signature but waives a failure, with a warning on every check.
    pub trusted: bool,
    /// The file (image path) and 1-based line that configure it.
    pub file: String,
    /// 1-based line of the entry (the paragraph's first line for deb822).
    pub line: usize,
}

impl ImageRepo {
    /// The repository as an apt source (mirror, suite, components).
    pub fn source(&self) -> AptSource {
        AptSource {
            mirror: self.uri.clone(),
            suite: self.suite.clone(),
            components: self.components.clone(),
        }
    }
}

/// A `deb` entry before its key is resolved.
struct Entry {
    uri: String,
    suites: Vec<String>,
    components: Vec<String>,
    architectures: Vec<String>,
    signed_by: Option<String>,
    trusted: bool,
    file: String,
    line: usize,
}

/// Read the binary-package (`deb`) repositories configured in `root`, skipping those whose
/// URI is one of `skip` (the Debian mirrors the stack itself configures and tracks),
/// disabled ones (`Enabled: no`) and `deb-src` entries. Returns the repositories and
/// warnings (naming the file and line) for entries drover cannot track: flat repositories,
/// non-http(s) URIs (`file:`, `cdrom:`) and keys named by fingerprint.
///
/// Errors: a malformed entry, or an unreadable or invalid key (`signed-by` file missing,
/// not OpenPGP; no key at all for an entry without `signed-by` that is not
/// `trusted=yes`); each names the file and line and how to fix it.
pub fn read_image_repos(root: &RootView, skip: &[String]) -> Result<(Vec<ImageRepo>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut files = vec!["etc/apt/sources.list".to_string()];
    let mut names = root.list("etc/apt/sources.list.d");
    names.sort();
    files.extend(names.iter().map(|n| format!("etc/apt/sources.list.d/{n}")));
    for rel in files {
        let is_list = rel.ends_with(".list");
        if !is_list && !rel.ends_with(".sources") {
            continue; // apt ignores other names too
        }
        let Some(bytes) = root
            .read(&rel)
            .with_context(|| format!("cannot read /{rel} in the image"))?
        else {
            continue;
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("/{rel} in the image is not UTF-8 text"))?;
        if is_list {
            parse_one_line(&text, &format!("/{rel}"), &mut entries)?;
        } else {
            parse_deb822(&text, &format!("/{rel}"), &mut entries)?;
        }
    }
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut fallback: Option<RepoKey> = None;
    for e in entries {
        if skip.iter().any(|s| s.trim_end_matches('/') == e.uri) {
            continue;
        }
        let at = format!("{}:{}", e.file, e.line);
        let name = format!("{} {}", e.uri, e.suites.join(" "));
        if !(e.uri.starts_with("http://") || e.uri.starts_with("https://")) {
            warnings.push(format!(
                "{at}: {name} is not an http(s) repository; drover does not track it, so its \
                 packages get no updates"
            ));
            continue;
        }
        let (flat, suites): (Vec<String>, Vec<String>) =
            e.suites.iter().cloned().partition(|s| s.ends_with('/'));
        for suite in flat {
            warnings.push(format!(
                "{at}: {} {suite} is a flat repository (suite ending in `/`); drover tracks \
                 only repositories with dists/SUITE, so its packages get no updates",
                e.uri
            ));
        }
        if suites.is_empty() {
            continue;
        }
        let fingerprints = e.signed_by.as_deref().is_some_and(|v| {
            !v.contains("-----BEGIN")
                && v.split(',')
                    .any(|p| !p.trim().is_empty() && !p.trim().starts_with('/'))
        });
        if fingerprints {
            warnings.push(format!(
                "{at}: {name} names its key by fingerprint (signed-by={}); drover needs the \
                 key file (signed-by=/path/to/key.gpg) to check it, so it is not tracked",
                e.signed_by.as_deref().unwrap_or_default()
            ));
            continue;
        }
        let key = match &e.signed_by {
            Some(v) => signed_by_key(root, v, &at)?,
            None => match &fallback {
                Some(k) => k.clone(),
                None => match trusted_keys(root) {
                    Ok(k) => {
                        fallback = Some(k.clone());
                        k
                    }
                    Err(_) if e.trusted => RepoKey {
                        from: "none (trusted=yes)".into(),
                        fingerprints: Vec::new(),
                        data: Vec::new(),
                    },
                    Err(err) => {
                        return Err(err.context(format!(
                            "the repository {name} at {at} has no signed-by option"
                        )))
                    }
                },
            },
        };
        for suite in &suites {
            out.push(ImageRepo {
                uri: e.uri.clone(),
                suite: suite.clone(),
                components: e.components.clone(),
                architectures: e.architectures.clone(),
                key: key.clone(),
                trusted: e.trusted,
                file: e.file.clone(),
                line: e.line,
            });
        }
    }
    Ok((out, warnings))
}

/// One-line format: `deb [ opt=val … ] URI SUITE [COMPONENT…]`, `#` comments.
fn parse_one_line(text: &str, file: &str, out: &mut Vec<Entry>) -> Result<()> {
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{file}:{}", i + 1);
        let (kind, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        match kind {
            "deb" => {}
            "deb-src" => continue,
            other => bail!(
                "{at}: unknown entry type `{other}` (expected `deb` or `deb-src`); fix the line \
                 the build script writes"
            ),
        }
        let mut rest = rest.trim_start();
        let mut options = Vec::new();
        if let Some(r) = rest.strip_prefix('[') {
            let Some((opts, after)) = r.split_once(']') else {
                bail!("{at}: the option list `[` is not closed with `]`");
            };
            for o in opts.split_whitespace() {
                let Some((k, v)) = o.split_once('=') else {
                    bail!("{at}: option `{o}` is not `name=value`");
                };
                options.push((k.to_ascii_lowercase(), v.to_string()));
            }
            rest = after;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let [uri, suite, components @ ..] = &words[..] else {
            bail!("{at}: expected `deb [options] URI SUITE [COMPONENT...]`, found `{line}`");
        };
        if components.is_empty() && !suite.ends_with('/') {
            bail!("{at}: `{suite}` names no component (e.g. `main`); add one");
        }
        let opt = |name: &str| {
            options
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        out.push(Entry {
            uri: uri.trim_end_matches('/').to_string(),
            suites: vec![suite.to_string()],
            components: components.iter().map(|c| c.to_string()).collect(),
            architectures: opt("arch")
                .map(|a| a.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            signed_by: opt("signed-by"),
            trusted: opt("trusted").as_deref() == Some("yes"),
            file: file.to_string(),
            line: i + 1,
        });
    }
    Ok(())
}

/// deb822 format: paragraphs of `Types`, `URIs`, `Suites`, `Components`, `Architectures`,
/// `Signed-By`, `Enabled`.
fn parse_deb822(text: &str, file: &str, out: &mut Vec<Entry>) -> Result<()> {
    // Split into paragraphs ourselves to know each one's first line.
    let mut chunks: Vec<(usize, String)> = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            if let Some(c) = cur.take() {
                chunks.push(c);
            }
            continue;
        }
        if l.starts_with('#') && cur.is_none() {
            continue;
        }
        let c = cur.get_or_insert_with(|| (i + 1, String::new()));
        c.1.push_str(l);
        c.1.push('\n');
    }
    chunks.extend(cur);
    for (line, chunk) in chunks {
        let at = format!("{file}:{line}");
        let paragraphs = parse_borrowed(&chunk)
            .map_err(|e| anyhow::anyhow!("{at}: not a deb822 paragraph: {e}"))?;
        let Some(p) = paragraphs.first() else {
            continue;
        };
        let words = |k: &str| -> Vec<String> {
            p.get(k)
                .map(|ls| {
                    ls.iter()
                        .flat_map(|l| l.split_whitespace())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        if words("Enabled").first().map(String::as_str) == Some("no") {
            continue;
        }
        let types = words("Types");
        if types.is_empty() {
            bail!("{at}: the paragraph has no `Types:` field (e.g. `Types: deb`)");
        }
        if !types.iter().any(|t| t == "deb") {
            continue;
        }
        let uris = words("URIs");
        let suites = words("Suites");
        if uris.is_empty() || suites.is_empty() {
            bail!("{at}: a `deb` paragraph needs `URIs:` and `Suites:`");
        }
        let components = words("Components");
        if components.is_empty() && suites.iter().any(|s| !s.ends_with('/')) {
            bail!(
                "{at}: `Suites: {}` needs `Components:` (e.g. `main`)",
                suites.join(" ")
            );
        }
        let signed_by = p.get("Signed-By").map(|ls| {
            // A multi-line value is an inline key; ` .` lines stand for empty lines.
            ls.iter()
                .map(|l| if l.trim() == "." { "" } else { l.trim() })
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string()
        });
        for uri in uris {
            out.push(Entry {
                uri: uri.trim_end_matches('/').to_string(),
                suites: suites.clone(),
                components: components.clone(),
                architectures: words("Architectures"),
                signed_by: signed_by.clone(),
                trusted: words("Trusted").first().map(String::as_str) == Some("yes"),
                file: file.to_string(),
                line,
            });
        }
    }
    Ok(())
}

/// The key a `signed-by` value names: an inline armoured block, or absolute paths of
/// keyring files in the image (comma-separated).
fn signed_by_key(root: &RootView, value: &str, at: &str) -> Result<RepoKey> {
    if value.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
        let k = Keyring::from_bytes(value.as_bytes())
            .with_context(|| format!("{at}: the inline Signed-By key is not valid"))?;
        return repo_key(&k, format!("inline Signed-By at {at}"));
    }
    let mut keyring: Option<Keyring> = None;
    for path in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if !path.starts_with('/') {
            bail!(
                "{at}: signed-by `{path}` is not an absolute key file path (fingerprint lists \
                 are not supported by drover); point signed-by at the keyring file"
            );
        }
        let k =
            read_key_file(root, path).with_context(|| format!("{at}: the signed-by key {path}"))?;
        match &mut keyring {
            Some(all) => all.extend(k),
            None => keyring = Some(k),
        }
    }
    let Some(k) = keyring else {
        bail!("{at}: signed-by is empty");
    };
    repo_key(&k, format!("signed-by {value}"))
}

fn read_key_file(root: &RootView, path: &str) -> Result<Keyring> {
    let bytes = root
        .read(path.trim_start_matches('/'))
        .with_context(|| format!("cannot read {path} in the image"))?
        .with_context(|| format!("{path} does not exist in the image"))?;
    Keyring::from_bytes(&bytes).with_context(|| format!("{path} in the image is not a keyring"))
}

/// apt's default trust: `/etc/apt/trusted.gpg` and `/etc/apt/trusted.gpg.d/*.gpg|*.asc`.
fn trusted_keys(root: &RootView) -> Result<RepoKey> {
    let mut files = Vec::new();
    if root.read("etc/apt/trusted.gpg")?.is_some() {
        files.push("/etc/apt/trusted.gpg".to_string());
    }
    let mut names = root.list("etc/apt/trusted.gpg.d");
    names.sort();
    files.extend(
        names
            .iter()
            .filter(|n| n.ends_with(".gpg") || n.ends_with(".asc"))
            .map(|n| format!("/etc/apt/trusted.gpg.d/{n}")),
    );
    let mut keyring: Option<Keyring> = None;
    for f in &files {
        let k = read_key_file(root, f)?;
        match &mut keyring {
            Some(all) => all.extend(k),
            None => keyring = Some(k),
        }
    }
    let Some(k) = keyring else {
        bail!(
            "no key signs it: there is no /etc/apt/trusted.gpg(.d) key in the image either; \
             give the entry `signed-by=/path/to/key.gpg`"
        );
    };
    repo_key(&k, files.join(" "))
}

fn repo_key(k: &Keyring, from: String) -> Result<RepoKey> {
    Ok(RepoKey {
        from,
        fingerprints: k.fingerprints(),
        data: k.to_binary()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_of(text: &str, deb822: bool) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if deb822 {
            parse_deb822(text, "/x.sources", &mut out)?;
        } else {
            parse_one_line(text, "/x.list", &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn one_line_with_options() {
        let e = entries_of(
            "# c\ndeb-src http://a/ x main\n\ndeb [ arch=amd64,arm64 signed-by=/k.gpg ] http://v.example/apt/ stable main extra # c\n",
            false,
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].uri, "http://v.example/apt");
        assert_eq!(e[0].suites, ["stable"]);
        assert_eq!(e[0].components, ["main", "extra"]);
        assert_eq!(e[0].architectures, ["amd64", "arm64"]);
        assert_eq!(e[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(e[0].line, 4);
    }

    #[test]
    fn one_line_errors_name_the_line() {
        let err = entries_of("\ndeb [arch=amd64 http://x stable main\n", false)
            .err()
            .unwrap();
        assert!(format!("{err}").starts_with("/x.list:2:"), "{err}");
        let err = entries_of("deb http://x stable\n", false).err().unwrap();
        assert!(format!("{err}").contains("/x.list:1") && format!("{err}").contains("component"));
        let err = entries_of("rpm http://x stable main\n", false)
            .err()
            .unwrap();
        assert!(format!("{err}").contains("`rpm`"));
    }

    #[test]
    fn deb822_paragraphs_and_inline_key() {
        let text = "# vendor\nTypes: deb deb-src\nURIs: https://v.example/apt/\nSuites: stable testing\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n abc\n -----END PGP PUBLIC KEY BLOCK-----\n\nTypes: deb\nURIs: http://off.example\nSuites: x\nComponents: main\nEnabled: no\n\nTypes: deb-src\nURIs: http://src.example\nSuites: x\nComponents: main\n";
        let e = entries_of(text, true).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 2);
        assert_eq!(e[0].suites, ["stable", "testing"]);
        let key = e[0].signed_by.as_deref().unwrap();
        assert!(key.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n"));
        let err = entries_of("Types: deb\nSuites: x\n", true).err().unwrap();
        assert!(format!("{err}").starts_with("/x.sources:1:"), "{err}");
    }
}
