//! The release build keeps panics catchable: with `panic = "abort"` a panic in a
//! handler kills the Lambda sandbox (a cold start for the next event and no
//! error report); with unwinding the runtime reports it as the invocation's error.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

#[test]
fn the_release_profile_unwinds_panics() {
    let manifest = std::fs::read_to_string(e2e::workspace_root().join("Cargo.toml"))
        .expect("workspace manifest");
    let release: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[profile.release]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::trim)
        .collect();
    assert!(!release.is_empty(), "no [profile.release] section");
    let panic = release.iter().find(|l| l.starts_with("panic")).map(|l| {
        l.split('=')
            .nth(1)
            .unwrap_or_default()
            .trim()
            .trim_matches('"')
    });
    assert!(
        matches!(panic, None | Some("unwind")),
        "release builds must unwind panics, found panic = {panic:?}"
    );
}
