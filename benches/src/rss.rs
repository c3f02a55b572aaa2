//! Reading this process's resident memory.

use crate::error::BenchError;

/// The resident set size of this process in bytes, read from `/proc/self/status` (`VmRSS`).
///
/// # Errors
///
/// When the file cannot be read or parsed (not Linux).
pub fn resident_bytes() -> Result<u64, BenchError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(BenchError::with("reading /proc/self/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| BenchError::new("/proc/self/status", "no VmRSS line"))
}
