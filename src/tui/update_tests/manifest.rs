//! The Manifest pane: sorting and a component's details.

use super::*;

#[test]
fn manifest_sort_and_details() {
    let mut s = state();
    update(&mut s, key('3'));
    let names = |s: &State| {
        s.manifest_list
            .visible
            .iter()
            .map(|i| s.manifest[*i].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&s), ["bash", "libssl3", "zlib1g"]);
    update(&mut s, key('S'));
    assert_eq!(names(&s), ["zlib1g", "libssl3", "bash"]);
    update(&mut s, key('s'));
    assert_eq!(s.manifest_sort, ManifestColumn::Version);
    // Debian version order: the epoch of `1:1.2.13` puts zlib1g last (string order
    // would put it first).
    assert_eq!(names(&s), ["libssl3", "bash", "zlib1g"]);
    update(&mut s, key('s'));
    assert_eq!(s.manifest_sort, ManifestColumn::Source);
    assert_eq!(names(&s), ["bash", "libssl3", "zlib1g"]);
    update(&mut s, key('s'));
    assert_eq!(s.manifest_sort, ManifestColumn::Suite);
    assert_eq!(names(&s)[2], "bash");
    update(&mut s, key('g'));
    update(&mut s, code(KeyCode::Enter));
    match &s.overlay {
        Some(Overlay::Detail { lines, .. }) => {
            assert!(lines.iter().any(|l| l.contains("source")), "{lines:?}")
        }
        o => panic!("expected details, got {o:?}"),
    }
    update(&mut s, key('q'));
    assert!(s.overlay.is_none());
    assert!(!s.quit);
}
