//! The macro's list of scenarios and the scenario functions are the same set: a new scenario
//! cannot be left out of the tests `conformance_tests!` stamps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use std::collections::BTreeSet;
use std::path::Path;

/// Names of `pub async fn name(store: Arc<dyn SessionStore>)` in the scenario modules.
fn scenario_functions() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scenarios");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("pub async fn ") else {
                continue;
            };
            let (name, args) = rest.split_once('(').unwrap();
            if args.starts_with("store: Arc<dyn SessionStore>)") {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Names in the `__stamp_scenarios!` call of the macro.
fn stamped() -> BTreeSet<String> {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    let start = lib.find("$backend, $make;").expect("the stamp call");
    let end = start + lib[start..].find(");").unwrap();
    lib[start + "$backend, $make;".len()..end]
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_scenario_is_stamped_and_every_stamp_is_a_scenario() {
    let functions = scenario_functions();
    let stamped = stamped();
    assert!(functions.len() > 50, "found {} scenarios", functions.len());
    let missing: Vec<_> = functions.difference(&stamped).collect();
    let unknown: Vec<_> = stamped.difference(&functions).collect();
    assert!(
        missing.is_empty(),
        "scenarios the macro does not stamp: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "stamped names that are no scenario: {unknown:?}"
    );
}
