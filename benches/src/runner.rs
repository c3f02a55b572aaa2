//! Driving one operation of one target with N concurrent tasks for a fixed time.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::BenchError;
use crate::target::{Op, Target};

/// Highest latency the histograms track (60 s, in nanoseconds); slower operations saturate.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// What one row measured.
#[derive(Debug, Clone)]
pub struct RowStats {
    /// Operations completed.
    pub ops: u64,
    /// From the start of the row to the moment its last task stopped.
    pub elapsed: Duration,
    /// Latency of each operation, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Operations that failed (not timed, not counted in `ops`).
    pub errors: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

impl RowStats {
    /// Whether every operation of the row succeeded. A row with failures has no meaningful
    /// throughput (a task that fails fast can spin through the whole row), so reports show
    /// its figures as missing.
    #[must_use]
    pub const fn is_clean(&self) -> bool {
        self.errors == 0
    }

    /// Completed operations per second.
    #[must_use]
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            count_f64(self.ops) / secs
        } else {
            0.0
        }
    }

    /// The latency at quantile `q` (0 to 1), in microseconds.
    #[must_use]
    pub fn latency_us(&self, q: f64) -> f64 {
        count_f64(self.latency.value_at_quantile(q)) / 1_000.0
    }
}

/// A count as `f64` (exact below 2^53, plenty for operation counts and nanoseconds).
#[must_use]
#[expect(
    clippy::cast_precision_loss,
    reason = "counts stay far below 2^53 in a run"
)]
pub(crate) fn count_f64(value: u64) -> f64 {
    value as f64
}

fn histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).map_err(BenchError::with("histogram"))
}

/// Runs `op` on `target` with one tokio task per state in `tasks`, each looping until
/// `duration` has passed or it runs out of work. The states are handed back in order.
///
/// Every task runs concurrently even when the target's operations never wait (an in-memory
/// map): each task gives its worker back at least every 128 operations (tokio's cooperative
/// budget), untimed, so N tasks on fewer cores share them in turn instead of the first two
/// running the whole row.
///
/// A failed operation does not stop the row: it is counted in [`RowStats::errors`] (and not
/// timed), so a run reports every store's failures and still fills its table.
///
/// # Errors
///
/// A failed preparation, or a panicked task.
pub async fn run_row<T: Target>(
    target: &Arc<T>,
    op: Op,
    tasks: &mut Vec<T::Task>,
    duration: Duration,
) -> Result<RowStats, BenchError> {
    for task in tasks.iter_mut() {
        target.prepare(op, task).await?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = tasks
        .drain(..)
        .map(|mut task| {
            let target = Arc::clone(target);
            tokio::spawn(async move {
                let mut latency = histogram()?;
                let mut ops = 0_u64;
                let mut errors = 0_u64;
                let mut first_error = None;
                loop {
                    let begun = Instant::now();
                    if begun >= deadline {
                        break;
                    }
                    match target.step(op, &mut task).await {
                        Ok(true) => {
                            let took = begun.elapsed();
                            latency.saturating_record(
                                u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
                            );
                            ops += 1;
                        }
                        Ok(false) => break,
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                    // Untimed. An operation that never waits (the memory targets) never hands
                    // its worker back on its own: without this, the first tasks to start would
                    // run the whole row while the others never start at all.
                    tokio::task::consume_budget().await;
                }
                Ok::<_, BenchError>((task, latency, ops, errors, first_error, Instant::now()))
            })
        })
        .collect();
    let mut latency = histogram()?;
    let mut ops = 0;
    let mut errors = 0;
    let mut last = start;
    let mut first_error = None;
    let mut first_op_error: Option<BenchError> = None;
    for handle in handles {
        match handle.await {
            Ok(Ok((task, hist, count, failed, op_error, ended))) => {
                tasks.push(task);
                latency.add(&hist).map_err(BenchError::with("histogram"))?;
                ops += count;
                errors += failed;
                if first_op_error.is_none() {
                    first_op_error = op_error;
                }
                last = last.max(ended);
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join) => {
                first_error.get_or_insert(BenchError::new("task", join));
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    Ok(RowStats {
        ops,
        elapsed: last - start,
        latency,
        errors,
        first_error: first_op_error.map(|e| e.to_string()),
    })
}

/// A boxed future, for [`Lane`].
type RowFuture<'a> = Pin<Box<dyn Future<Output = Result<RowStats, BenchError>> + Send + 'a>>;

/// A target together with its task states, with the target type erased so that lanes of
/// different kinds (ours, limit, peer) run side by side. Boxing happens once per row, never per
/// operation.
pub struct Lane {
    runner: Box<dyn LaneRunner>,
}

trait LaneRunner: Send {
    fn supports(&self, op: Op) -> bool;
    fn run(&mut self, op: Op, duration: Duration) -> RowFuture<'_>;
}

struct Bound<T: Target> {
    target: Arc<T>,
    tasks: Vec<T::Task>,
}

impl<T: Target> LaneRunner for Bound<T> {
    fn supports(&self, op: Op) -> bool {
        self.target.supports(op)
    }

    fn run(&mut self, op: Op, duration: Duration) -> RowFuture<'_> {
        Box::pin(run_row(&self.target, op, &mut self.tasks, duration))
    }
}

impl Lane {
    /// A lane of `concurrency` tasks over `target`.
    pub fn new<T: Target>(target: T, concurrency: usize) -> Self {
        let tasks = (0..concurrency).map(|index| target.task(index)).collect();
        Self {
            runner: Box::new(Bound {
                target: Arc::new(target),
                tasks,
            }),
        }
    }

    /// Whether the target has an equivalent of `op`.
    #[must_use]
    pub fn supports(&self, op: Op) -> bool {
        self.runner.supports(op)
    }

    /// Runs one row: `None` when the target has no equivalent of `op`.
    ///
    /// # Errors
    ///
    /// As [`run_row`].
    pub async fn run(
        &mut self,
        op: Op,
        duration: Duration,
    ) -> Result<Option<RowStats>, BenchError> {
        if !self.runner.supports(op) {
            return Ok(None);
        }
        self.runner.run(op, duration).await.map(Some)
    }
}
