//! The workload contract every measured thing implements.

use std::fmt;
use std::future::Future;

use crate::error::BenchError;

/// One operation of the session lifecycle, as the manager exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Login: create a session (a fresh user each time, so the per-user cap never evicts).
    Login,
    /// Validate: look a live session up by id (no sliding-expiry write: the touch interval has
    /// not elapsed).
    Validate,
    /// Refresh: rotate the refresh token.
    Refresh,
    /// List the sessions of a user who has 10 live sessions.
    List10,
    /// Revoke one live session (logout).
    Revoke,
}

impl Op {
    /// Every operation, in the order the harness runs them (login first: it creates the
    /// sessions the others use; revoke last: it consumes them).
    pub const ALL: [Self; 5] = [
        Self::Login,
        Self::Validate,
        Self::Refresh,
        Self::List10,
        Self::Revoke,
    ];

    /// The name printed in tables.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Validate => "validate",
            Self::Refresh => "refresh",
            Self::List10 => "list (10)",
            Self::Revoke => "revoke",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something the harness can drive: one of our stores through the manager, a raw limit, or a
/// peer store.
///
/// Each concurrent task owns a [`Target::Task`] state that lives across rows: the sessions a
/// task created at login are the ones it validates, refreshes and finally revokes.
pub trait Target: Send + Sync + 'static {
    /// Per-task state.
    type Task: Send + 'static;

    /// Whether this target has an equivalent of `op`.
    fn supports(&self, op: Op) -> bool;

    /// A fresh state for task number `index`.
    fn task(&self, index: usize) -> Self::Task;

    /// Untimed preparation of a task before a row of `op` (for example the users listed by
    /// [`Op::List10`]).
    fn prepare(
        &self,
        op: Op,
        task: &mut Self::Task,
    ) -> impl Future<Output = Result<(), BenchError>> + Send;

    /// One timed operation. `Ok(false)` says the task has no more work for `op` (it ran out of
    /// sessions to revoke, or reached its login budget); nothing was timed.
    fn step(
        &self,
        op: Op,
        task: &mut Self::Task,
    ) -> impl Future<Output = Result<bool, BenchError>> + Send;
}

/// How many sessions each task of a target may create at login, shared with the harness so it
/// can grow a population in steps (1,000 sessions, then 1,000,000).
#[derive(Debug, Clone)]
pub struct Budget(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Budget {
    /// A budget of `per_task` logins per task.
    #[must_use]
    pub fn new(per_task: usize) -> Self {
        Self(std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(
            per_task,
        )))
    }

    /// The current budget.
    #[must_use]
    pub fn get(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes the budget.
    pub fn set(&self, per_task: usize) {
        self.0.store(per_task, std::sync::atomic::Ordering::Relaxed);
    }
}
