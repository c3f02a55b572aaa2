//! [`ops_per_second`]: a bare closed loop for the split benches (no histogram, no budget).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::BenchError;

/// Runs `op(task, n)` in a loop on `tasks` tokio tasks for `seconds` (`n` counts the task's
/// calls from 0) and returns the completed operations per second. The first error of any task
/// ends the measurement with that error.
///
/// # Errors
///
/// An error of `op`, or a task that panicked.
pub async fn ops_per_second<F, Fut>(
    tasks: usize,
    seconds: Duration,
    op: F,
) -> Result<f64, BenchError>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + seconds;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (op, done) = (Arc::clone(&op), Arc::clone(&done));
        handles.push(tokio::spawn(async move {
            let mut n = 0_u64;
            while Instant::now() < until {
                op(task, n).await?;
                n += 1;
            }
            done.fetch_add(n, Ordering::Relaxed);
            Ok::<(), BenchError>(())
        }));
    }
    for handle in handles {
        handle.await.map_err(|e| BenchError::new("task", e))??;
    }
    #[allow(clippy::cast_precision_loss, reason = "a rate")]
    Ok(done.load(Ordering::Relaxed) as f64 / seconds.as_secs_f64())
}
