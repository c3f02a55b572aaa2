//! PostgreSQL change notifications: which session rows any client updates or deletes, as soon
//! as the change commits, through `LISTEN`/`NOTIFY`.
//!
//! Opt in with [`DbStore::install_change_notifications`]: it creates (or replaces) a trigger on
//! the sessions table that runs, after every `UPDATE` or `DELETE`, for each row,
//! `pg_notify('<table>_changed', OLD.id)`. PostgreSQL delivers a notification when the
//! transaction that made it commits, to every session listening on the channel, in commit
//! order, and folds identical ones within a transaction. The store's own statements are
//! unchanged; any other writer (an admin script, another version of the store) is covered too.
//! A near cache (the `session-cache` crate) evicts its entries from these events.
//!
//! # Cost
//!
//! Every write to a session row (a touch, a rotation, a revocation, a purge) queues one
//! notification, about 40 bytes, in the server's notification queue (8 GB at most; a listener
//! that stops reading holds the queue back). Committing a transaction that notified takes a
//! server-wide lock briefly, so heavy write loads from many connections serialise there a
//! little.
//!
//! # Events and the guarantee
//!
//! [`ChangeListener::run`] reports [`ChangeEvent::Listening`] once `LISTEN` is in force, then
//! one [`ChangeEvent::Invalidated`] per changed row, and [`ChangeEvent::Lost`] as soon as it
//! knows the listening connection is gone: the connection closed (`pg_terminate_backend`, a
//! server restart), or a heartbeat (a `pg_notify` on the same channel, sent every
//! [`ChangeListener::with_heartbeat`] interval through the store's pool) did not come back
//! within the interval. Between `Lost` and the next `Listening`, changes may go unreported.

use std::time::Duration;

use sea_orm::ConnectionTrait as _;
use sea_orm::sqlx::postgres::{PgListener, PgPool};
use session_core::{ConfigError, Error, SessionId};
use tokio::sync::mpsc;

use crate::dialect::Dialect;
use crate::error::to_error;
use crate::store::DbStore;

/// What [`ChangeListener::run`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeEvent {
    /// `LISTEN` is in force: every change committed from now on is reported until a
    /// [`ChangeEvent::Lost`].
    Listening,
    /// The row of this session was updated or deleted by some client.
    Invalidated(SessionId),
    /// The listening connection is gone (the text says why): changes may go unreported until
    /// the next [`ChangeEvent::Listening`].
    Lost(String),
}

/// The default interval between two heartbeats of a [`ChangeListener`].
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);

/// The channel the trigger of [`DbStore::install_change_notifications`] notifies on for the
/// sessions table `table`: `<table>_changed`.
#[must_use]
pub fn change_channel(table: &crate::TableName) -> String {
    change_channel_name(table.as_str())
}

impl DbStore {
    /// Creates or replaces, in one transaction, the function `<table>_notify_change()` and the
    /// trigger `<table>_notify_change` that notify [`change_channel`] with the session id of
    /// every row updated or deleted (see the [module docs](crate::notify)). Idempotent: call it
    /// at start-up after [`DbStore::migrate`], or apply [`change_notifications_sql`] with your
    /// own tooling. PostgreSQL only.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] on SQLite and MySQL, or if the database refuses (for example the
    /// table does not exist yet); [`Error::Unavailable`] if it cannot be reached.
    pub async fn install_change_notifications(&self) -> Result<(), Error> {
        if self.dialect() != Dialect::Postgres {
            return Err(Error::backend(
                "db",
                "change notifications need PostgreSQL (LISTEN/NOTIFY)",
            ));
        }
        let sql = change_notifications_sql(self.table());
        self.connection()
            .execute_unprepared(&format!("BEGIN; {sql} COMMIT;"))
            .await
            .map_err(|e| to_error(Dialect::Postgres, e))?;
        Ok(())
    }

    /// A listener of this store's change notifications (which
    /// [`DbStore::install_change_notifications`] must have set up), on the store's pool.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Store`] unless the store is on PostgreSQL.
    pub fn change_listener(&self) -> Result<ChangeListener, ConfigError> {
        if self.dialect() != Dialect::Postgres {
            return Err(ConfigError::Store(
                "change notifications need PostgreSQL (LISTEN/NOTIFY)".to_owned(),
            ));
        }
        Ok(ChangeListener {
            pool: self.connection().get_postgres_connection_pool().clone(),
            channel: change_channel(self.table()),
            heartbeat: DEFAULT_HEARTBEAT,
        })
    }
}

/// The statements [`DbStore::install_change_notifications`] runs for `table` (without the
/// surrounding transaction), for applying them with your own migration tooling.
#[must_use]
pub fn change_notifications_sql(table: &crate::TableName) -> String {
    let table = table.as_str();
    let channel = change_channel_name(table);
    format!(
        "CREATE OR REPLACE FUNCTION \"{table}_notify_change\"() RETURNS trigger \
         LANGUAGE plpgsql AS $body$ BEGIN PERFORM pg_notify('{channel}', OLD.id); \
         RETURN NULL; END $body$; \
         DROP TRIGGER IF EXISTS \"{table}_notify_change\" ON \"{table}\"; \
         CREATE TRIGGER \"{table}_notify_change\" AFTER UPDATE OR DELETE ON \"{table}\" \
         FOR EACH ROW EXECUTE FUNCTION \"{table}_notify_change\"();"
    )
}

fn change_channel_name(table: &str) -> String {
    format!("{table}_changed")
}

/// Follows the change notifications of one sessions table. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct ChangeListener {
    pool: PgPool,
    channel: String,
    heartbeat: Duration,
}

/// The payload prefix of heartbeats (never a session id, which is 36 hex digits and dashes).
const PING: &str = "ping:";

impl ChangeListener {
    /// Sends a heartbeat every `every` (default [`DEFAULT_HEARTBEAT`]): a listening connection
    /// that died silently is reported [`ChangeEvent::Lost`] within about twice `every`. A zero
    /// interval is taken as 1 ms.
    #[must_use]
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// The channel listened to.
    #[must_use]
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Listens and reports every event to `on_event`, for ever: after a [`ChangeEvent::Lost`]
    /// it listens again on a new connection (every 100 ms to 1 s while the server is down).
    /// Cancel it by dropping the future (or aborting its task).
    pub async fn run(&self, mut on_event: impl FnMut(ChangeEvent) + Send) {
        let mut delay = Duration::from_millis(100);
        loop {
            let (text, listened) = match self.listen(&mut on_event).await {
                Ok(never) => match never {},
                Err(lost) => lost,
            };
            if listened {
                delay = Duration::from_millis(100);
            }
            on_event(ChangeEvent::Lost(text));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// One listening connection, from `LISTEN` to its loss: `Err((why, listened))`.
    async fn listen(
        &self,
        on_event: &mut (impl FnMut(ChangeEvent) + Send),
    ) -> Result<std::convert::Infallible, (String, bool)> {
        let bound = self.heartbeat.max(Duration::from_secs(2));
        let mut listener = tokio::time::timeout(bound, PgListener::connect_with(&self.pool))
            .await
            .map_err(|_| (format!("no connection within {bound:?}"), false))?
            .map_err(|e| (format!("cannot connect: {e}"), false))?;
        tokio::time::timeout(bound, listener.listen(&self.channel))
            .await
            .map_err(|_| (format!("no answer to LISTEN within {bound:?}"), false))?
            .map_err(|e| (format!("LISTEN refused: {e}"), false))?;
        // The listener is read in its own task, so that a heartbeat never cancels a read half
        // way; the task ends with this function (dropping the guard aborts it).
        let (tx, mut payloads) = mpsc::unbounded_channel::<Result<String, String>>();
        let reader = tokio::spawn(async move {
            loop {
                let next = match listener.try_recv().await {
                    Ok(Some(notification)) => Ok(notification.payload().to_owned()),
                    Ok(None) => Err("the listening connection closed".to_owned()),
                    Err(e) => Err(format!("the listening connection failed: {e}")),
                };
                let end = next.is_err();
                if tx.send(next).is_err() || end {
                    return;
                }
            }
        });
        let _guard = AbortOnDrop(reader);
        on_event(ChangeEvent::Listening);
        let nonce = format!("{PING}{:016x}:", rand_u64());
        let mut sent: u64 = 0;
        let mut echoed: u64 = 0;
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        loop {
            tokio::select! {
                biased;
                payload = payloads.recv() => {
                    let payload = match payload {
                        Some(Ok(payload)) => payload,
                        Some(Err(why)) => return Err((why, true)),
                        None => return Err(("the listener stopped".to_owned(), true)),
                    };
                    if let Some(seq) = payload.strip_prefix(&nonce) {
                        if let Ok(seq) = seq.parse::<u64>() {
                            echoed = echoed.max(seq);
                        }
                    } else if let Ok(id) = payload.parse::<SessionId>() {
                        on_event(ChangeEvent::Invalidated(id));
                    }
                }
                _ = heartbeat.tick() => {
                    if echoed < sent {
                        return Err((
                            format!("heartbeat {sent} not echoed within {:?}", self.heartbeat),
                            true,
                        ));
                    }
                    sent += 1;
                    let ping = sea_orm::sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(&self.channel)
                        .bind(format!("{nonce}{sent}"))
                        .execute(&self.pool);
                    match tokio::time::timeout(self.heartbeat, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err((format!("heartbeat failed: {e}"), true)),
                        Err(_) => {
                            return Err((
                                format!("heartbeat not sent within {:?}", self.heartbeat),
                                true,
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A random value, different in every call and every process.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}
