//! The row runner on a multi-thread runtime with fewer workers than tasks, as on a small
//! machine: every task runs, and every operation row finds the sessions it works on whatever
//! the length of the login row before it. No servers needed.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a test fails by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use session_benches::{
    BenchError, Budget, Op, Ours, RawMemory, Target, bench_config, run_row, tower_memory,
};
use session_memory::MemoryStore;

const TASKS: usize = 16;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A target whose operation never waits and only counts, per task.
struct Spin;

impl Target for Spin {
    type Task = u64;

    fn supports(&self, _op: Op) -> bool {
        true
    }

    fn task(&self, _index: usize) -> u64 {
        0
    }

    async fn prepare(&self, _op: Op, _task: &mut u64) -> Result<(), BenchError> {
        Ok(())
    }

    async fn step(&self, _op: Op, task: &mut u64) -> Result<bool, BenchError> {
        *task += 1;
        Ok(true)
    }
}

#[test]
fn tasks_that_never_wait_all_run() {
    runtime().block_on(async {
        let target = Arc::new(Spin);
        let mut tasks = vec![0_u64; TASKS];
        let stats = run_row(&target, Op::Login, &mut tasks, Duration::from_millis(200))
            .await
            .unwrap();
        assert!(stats.is_clean());
        assert!(
            tasks.iter().all(|&ops| ops > 0),
            "some tasks never ran: {tasks:?}"
        );
    });
}

/// Every row after a login row of `login_row`, on `target`; panics on any failed operation.
async fn every_row<T: Target>(target: T, login_row: Duration) {
    let target = Arc::new(target);
    let mut tasks: Vec<T::Task> = (0..TASKS).map(|i| target.task(i)).collect();
    for op in Op::ALL {
        if !target.supports(op) {
            continue;
        }
        let row = if op == Op::Login {
            login_row
        } else {
            Duration::from_millis(100)
        };
        let stats = run_row(&target, op, &mut tasks, row).await.unwrap();
        assert!(
            stats.is_clean(),
            "{op} after a login row of {login_row:?}: {} failed of {} (first: {})",
            stats.errors,
            stats.errors + stats.ops,
            stats.first_error.as_deref().unwrap_or("?")
        );
        if op != Op::Login {
            assert!(stats.ops > 0, "{op}: nothing done");
        }
    }
}

#[test]
fn every_row_works_after_any_login_row() {
    let rt = runtime();
    // A login row longer than the tasks' budget allows, one too short for every task to get a
    // turn, and one that ends before it starts.
    for login_row in [
        Duration::from_millis(300),
        Duration::from_micros(50),
        Duration::ZERO,
    ] {
        rt.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let ours = Ours::new(store, bench_config(), "rows", Budget::new(1_000)).unwrap();
            every_row(ours, login_row).await;
            every_row(RawMemory::new("rows", Budget::new(1_000)), login_row).await;
            every_row(tower_memory("rows", Budget::new(1_000)), login_row).await;
        });
    }
}
