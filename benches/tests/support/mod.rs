//! Shared by the bench tests: running one of the benches' binaries.

#![allow(
    clippy::panic,
    clippy::print_stdout,
    reason = "a test helper reports and fails"
)]

/// Runs `binary` with `args`; its standard output, or a failure naming what it printed.
pub(crate) fn run(binary: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(binary)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{binary} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
