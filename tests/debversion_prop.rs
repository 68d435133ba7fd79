//! Property test: Debian version ordering from the `debversion` crate (used for pending
//! updates) agrees with `dpkg --compare-versions` (Debian Policy §5.6.12) on generated
//! versions with epochs, tildes, pluses, dots and revisions.

// Tests and benchmarks may panic on a failed setup step: that is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::process::Command;
use std::str::FromStr;

use debversion::Version;
use proptest::prelude::*;

fn dpkg_cmp(a: &str, b: &str) -> Ordering {
    let run = |op: &str| {
        Command::new("dpkg")
            .args(["--compare-versions", a, op, b])
            .status()
            .expect("dpkg is needed for this test (Debian machine)")
            .success()
    };
    if run("lt") {
        Ordering::Less
    } else if run("eq") {
        Ordering::Equal
    } else {
        Ordering::Greater
    }
}

fn version() -> impl Strategy<Value = String> {
    (
        prop::option::of(0u32..3),
        "[0-9][0-9a-c.+~]{0,5}",
        prop::option::of("[0-9a-c+.~]{1,4}"),
    )
        .prop_map(|(epoch, upstream, revision)| {
            let mut v = String::new();
            if let Some(e) = epoch {
                v.push_str(&format!("{e}:"));
            }
            v.push_str(&upstream);
            if let Some(r) = revision {
                v.push('-');
                v.push_str(&r);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn debversion_orders_like_dpkg(a in version(), b in version()) {
        let (Ok(va), Ok(vb)) = (Version::from_str(&a), Version::from_str(&b)) else {
            // Both parsers must then reject it: dpkg warns about a bad syntax.
            return Ok(());
        };
        prop_assert_eq!(va.cmp(&vb), dpkg_cmp(&a, &b), "{} vs {}", a, b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// drover's regex-free splitter accepts and splits exactly like `debversion`.
    #[test]
    fn fast_split_equals_debversion(v in "[0-9a-c:.+~-]{1,10}") {
        let ours = drover::debian::packages::parse_version(&v);
        let theirs = Version::from_str(&v).ok();
        prop_assert_eq!(
            ours.as_ref().map(|o| (o.epoch, o.upstream_version.clone(), o.debian_revision.clone())),
            theirs.as_ref().map(|t| (t.epoch, t.upstream_version.clone(), t.debian_revision.clone())),
            "{}", v
        );
    }
}

#[test]
fn known_orderings_hold() {
    for (a, b) in [
        ("1.0~rc1-1", "1.0-1"),
        ("1.0-1", "1.0-1+deb12u1"),
        ("3.0.20-1~deb12u2", "3.0.22-1~deb12u2"),
        ("2.0", "1:0.1"),
        ("10.42-1", "10.42-1+deb12u2"),
    ] {
        let (va, vb) = (Version::from_str(a).unwrap(), Version::from_str(b).unwrap());
        assert!(va < vb, "{a} < {b}");
        assert_eq!(dpkg_cmp(a, b), Ordering::Less, "dpkg: {a} < {b}");
    }
}
