//! Our stores, driven through the [`SessionManager`] as an app would.

use std::hint::black_box;
use std::sync::Arc;

use session_core::{
    LoginRequest, RefreshToken, SessionConfig, SessionId, SessionManager, SessionStore, UserId,
};

use crate::error::BenchError;
use crate::target::{Budget, Op, Target};

/// Sessions each user of [`Op::List10`] holds.
const LIST_SESSIONS: usize = 10;
/// Users each task lists in turn.
const LIST_USERS: usize = 8;

/// A store behind a [`SessionManager`]: every operation is the manager's, with its policies
/// (token generation and hashing, expiry checks, the per-user cap).
#[derive(Debug)]
pub struct Ours {
    manager: SessionManager,
    run: String,
    login_budget: Budget,
}

/// A session a task holds, with its current refresh token.
#[derive(Debug)]
struct Held {
    id: SessionId,
    token: RefreshToken,
}

/// Per-task state of [`Ours`].
#[derive(Debug)]
pub struct OursTask {
    index: usize,
    sessions: Vec<Held>,
    cursor: usize,
    revoked: usize,
    list_users: Vec<UserId>,
    list_cursor: usize,
}

impl Ours {
    /// A target over `store` with `config`. Each task logs in at most `login_budget` sessions;
    /// user ids start with `run` so that runs never share users.
    ///
    /// # Errors
    ///
    /// When `config` does not validate.
    pub fn new(
        store: Arc<dyn SessionStore>,
        config: SessionConfig,
        run: &str,
        login_budget: Budget,
    ) -> Result<Self, BenchError> {
        Ok(Self {
            manager: SessionManager::new(store, config).map_err(BenchError::with("config"))?,
            run: run.to_owned(),
            login_budget,
        })
    }

    /// The manager.
    #[must_use]
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }

    fn context(&self, op: Op) -> String {
        format!("{} store, {op}", self.manager.store().capabilities().name)
    }

    /// Logs a fresh user of `task` in and keeps the session, whatever the budget.
    async fn login(&self, op: Op, task: &mut OursTask) -> Result<(), BenchError> {
        let n = task.sessions.len();
        let user = UserId::new(format!("{}-{}-{n}", self.run, task.index))
            .map_err(BenchError::with("user id"))?;
        let login = self
            .manager
            .login(&user, LoginRequest::new())
            .await
            .map_err(|e| BenchError::new(self.context(op), e))?;
        task.sessions.push(Held {
            id: login.session.id,
            token: login.token,
        });
        Ok(())
    }
}

impl Target for Ours {
    type Task = OursTask;

    fn supports(&self, _op: Op) -> bool {
        true
    }

    fn task(&self, index: usize) -> OursTask {
        OursTask {
            index,
            sessions: Vec::new(),
            cursor: 0,
            revoked: 0,
            list_users: Vec::new(),
            list_cursor: 0,
        }
    }

    async fn prepare(&self, op: Op, task: &mut OursTask) -> Result<(), BenchError> {
        if needs_one(op) && task.sessions.is_empty() {
            // The login row may have ended before this task's first turn.
            return self.login(op, task).await;
        }
        if op != Op::List10 || !task.list_users.is_empty() {
            return Ok(());
        }
        for user in 0..LIST_USERS {
            let user = UserId::new(format!("{}-list-{}-{user}", self.run, task.index))
                .map_err(BenchError::with("user id"))?;
            for _ in 0..LIST_SESSIONS {
                self.manager
                    .login(&user, LoginRequest::new())
                    .await
                    .map_err(|e| BenchError::new(self.context(op), e))?;
            }
            task.list_users.push(user);
        }
        Ok(())
    }

    async fn step(&self, op: Op, task: &mut OursTask) -> Result<bool, BenchError> {
        let fail = |e| BenchError::new(self.context(op), e);
        match op {
            Op::Login => {
                if task.sessions.len() >= self.login_budget.get() {
                    return Ok(false);
                }
                self.login(op, task).await?;
            }
            Op::Validate => {
                let held = next(&task.sessions, &mut task.cursor, op)?;
                black_box(self.manager.validate(&held.id).await.map_err(fail)?);
            }
            Op::Refresh => {
                let len = task.sessions.len();
                let slot = task.cursor % len.max(1);
                task.cursor = task.cursor.wrapping_add(1);
                let held = task
                    .sessions
                    .get_mut(slot)
                    .ok_or_else(|| BenchError::new(op.name(), "no session to refresh"))?;
                let refreshed = self
                    .manager
                    .refresh(held.token.expose_secret())
                    .await
                    .map_err(fail)?;
                held.token = refreshed.token;
            }
            Op::List10 => {
                let user = next(&task.list_users, &mut task.list_cursor, op)?;
                let listed = self.manager.list(user).await.map_err(fail)?;
                if listed.len() != LIST_SESSIONS {
                    return Err(fail(session_core::Error::backend(
                        "bench",
                        format!("listed {} sessions, expected {LIST_SESSIONS}", listed.len()),
                    )));
                }
                black_box(listed);
            }
            Op::Revoke => {
                let Some(held) = task.sessions.get(task.revoked) else {
                    return Ok(false);
                };
                task.revoked += 1;
                if !self.manager.logout(&held.id).await.map_err(fail)? {
                    return Err(BenchError::new(
                        self.context(op),
                        "the session was not live",
                    ));
                }
            }
        }
        Ok(true)
    }
}

/// Whether every task needs at least one session (or key, or record) before a row of `op`:
/// validate and refresh work on what login created, and a login row may end before some task
/// ran at all (a short row, many tasks, a slow store). Revoke needs none: a task with nothing
/// left to revoke stops.
pub(crate) const fn needs_one(op: Op) -> bool {
    matches!(op, Op::Validate | Op::Refresh)
}

/// The next item of `items`, round robin.
pub(crate) fn next<'a, T>(items: &'a [T], cursor: &mut usize, op: Op) -> Result<&'a T, BenchError> {
    let item = items
        .get(*cursor % items.len().max(1))
        .ok_or_else(|| BenchError::new(op.name(), "no session to work on: login created none"))?;
    *cursor = cursor.wrapping_add(1);
    Ok(item)
}
