//! Invalidation tracking (`CLIENT TRACKING`): see [`RedisTracking`].

use std::time::Duration;

use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};
use session_core::{ConfigError, SessionId};
use tokio::sync::mpsc;

use crate::config::RedisConfig;
use crate::connection::{OpenError, tracking_client};

/// What [`RedisTracking::run`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackingEvent {
    /// Tracking is on: every write from now on is reported until a [`TrackingEvent::Lost`].
    Tracking,
    /// The record of this session was written, deleted or expired by some client.
    Invalidated(SessionId),
    /// The server dropped every key at once (`FLUSHDB`, `FLUSHALL`): forget everything.
    FlushAll,
    /// The tracking connection is gone (the text says why): writes may go unreported until the
    /// next [`TrackingEvent::Tracking`].
    Lost(String),
}

/// Follows writes to the session records under one key prefix on a standalone Redis server.
///
/// It keeps one dedicated RESP3 connection in broadcasting mode
/// (`CLIENT TRACKING ON BCAST PREFIX <key_prefix>{`): Redis then pushes an `invalidate`
/// message on it for every key under the store's prefix that any client modifies, deletes or
/// expires, right after the command that did it. The connection reads no key itself, so the
/// server keeps no per-key tracking table for it (broadcasting mode costs the server one prefix
/// match per write). A near cache (the `session-cache` crate) uses these events to evict its
/// entries.
///
/// Only a **standalone** server can be tracked: [`RedisTracking::new`] refuses a Sentinel or
/// Cluster configuration (a cache in front of those needs a bounded staleness instead).
///
/// # Events and the guarantee
///
/// [`RedisTracking::run`] reports [`TrackingEvent::Tracking`] once tracking is on, then one
/// [`TrackingEvent::Invalidated`] per session record written, deleted or expired (by any
/// client, this process's included), and [`TrackingEvent::Lost`] as soon as it knows the
/// connection is gone: the driver saw it close (`CLIENT KILL`, a server restart), or a `PING`
/// sent every [`RedisTracking::with_heartbeat`] interval got no answer within the store's
/// `response_timeout`. Between `Lost` and the next `Tracking`, writes may go unreported, so a
/// cache must forget everything at `Lost` and not cache until `Tracking`. A write applied after
/// `Tracking` is always reported before the next `Lost`.
#[derive(Debug, Clone)]
pub struct RedisTracking {
    client: Client,
    /// `<key_prefix>{`: the common start of every session and index key of the store.
    tracked: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    heartbeat: Duration,
    retry_delay: Duration,
    client_name: String,
}

/// The default interval between two `PING`s on the tracking connection.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(500);

impl RedisTracking {
    /// Tracking for the store `config` configures (same server, credentials, database, TLS and
    /// key prefix). Contacts nothing: [`RedisTracking::run`] connects.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `config` does not validate, or names a Sentinel or Cluster
    /// deployment.
    pub fn new(config: &RedisConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let client = match tracking_client(config) {
            Ok(client) => client,
            Err(OpenError::Config(error)) => return Err(error),
            Err(OpenError::Redis(error)) => return Err(ConfigError::Store(error.to_string())),
            Err(OpenError::Connect(failure)) => {
                return Err(ConfigError::Store(failure.to_string()));
            }
        };
        Ok(Self {
            client,
            tracked: format!("{}{{", config.key_prefix),
            connect_timeout: config.connect_timeout,
            response_timeout: config.response_timeout,
            heartbeat: DEFAULT_HEARTBEAT,
            retry_delay: Duration::from_millis(100),
            client_name: "session-tracking".to_owned(),
        })
    }

    /// Sends a `PING` on the tracking connection every `every` (default
    /// [`DEFAULT_HEARTBEAT`]), so a connection that died silently (no reset reached us) is
    /// reported [`TrackingEvent::Lost`] within `every + response_timeout`. A zero interval is
    /// taken as 1 ms.
    #[must_use]
    pub fn with_heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self
    }

    /// The name the tracking connection gives itself (`CLIENT SETNAME`; default
    /// `session-tracking`), as `CLIENT LIST` shows it. Spaces are not allowed by Redis; any
    /// byte that is not printable ASCII or is a space becomes `_`.
    #[must_use]
    pub fn with_client_name(mut self, name: &str) -> Self {
        self.client_name = name
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        if self.client_name.is_empty() {
            "session-tracking".clone_into(&mut self.client_name);
        }
        self
    }

    /// The name the tracking connection gives itself.
    #[must_use]
    pub fn client_name(&self) -> &str {
        &self.client_name
    }

    /// Connects, turns tracking on and reports every event to `on_event`, for ever: after a
    /// [`TrackingEvent::Lost`] it connects again (every 100 ms to 1 s while the server is
    /// down). Cancel it by dropping the future (or aborting its task).
    pub async fn run(&self, mut on_event: impl FnMut(TrackingEvent) + Send) {
        let mut delay = self.retry_delay;
        loop {
            let reason = match self.track(&mut on_event).await {
                Ok(never) => match never {},
                Err(reason) => reason,
            };
            if reason.tracked {
                delay = self.retry_delay;
            }
            on_event(TrackingEvent::Lost(reason.text));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    /// One tracking connection, from opening it to losing it.
    async fn track(
        &self,
        on_event: &mut (impl FnMut(TrackingEvent) + Send),
    ) -> Result<std::convert::Infallible, LostReason> {
        let untracked = |text: String| LostReason {
            text,
            tracked: false,
        };
        let (tx, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
        let config = AsyncConnectionConfig::new()
            .set_push_sender(tx)
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout));
        let bound = self.connect_timeout + self.response_timeout;
        let mut conn = tokio::time::timeout(
            bound,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| untracked(format!("no connection within {bound:?}")))?
        .map_err(|e| untracked(format!("cannot connect: {e}")))?;
        let mut setup = redis::pipe();
        setup
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.client_name)
            .ignore()
            .cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("BCAST")
            .arg("PREFIX")
            .arg(&self.tracked)
            .ignore();
        tokio::time::timeout(self.response_timeout, setup.query_async::<()>(&mut conn))
            .await
            .map_err(|_| untracked("no answer to CLIENT TRACKING".to_owned()))?
            .map_err(|e| untracked(format!("CLIENT TRACKING refused: {e}")))?;
        on_event(TrackingEvent::Tracking);
        let lost = |text: String| LostReason {
            text,
            tracked: true,
        };
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        loop {
            tokio::select! {
                biased;
                push = pushes.recv() => {
                    let Some(push) = push else {
                        return Err(lost("the tracking connection closed".to_owned()));
                    };
                    match push.kind {
                        PushKind::Invalidate => self.invalidated(push.data, on_event),
                        PushKind::Disconnection => {
                            return Err(lost("the tracking connection closed".to_owned()));
                        }
                        _ => {}
                    }
                }
                _ = heartbeat.tick() => {
                    let ping = redis::cmd("PING");
                    match tokio::time::timeout(
                        self.response_timeout,
                        ping.query_async::<Value>(&mut conn),
                    )
                    .await
                    {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(lost(format!("heartbeat failed: {e}"))),
                        Err(_) => {
                            return Err(lost(format!(
                                "no heartbeat answer within {:?}",
                                self.response_timeout
                            )));
                        }
                    }
                }
            }
        }
    }

    /// Reports the sessions an `invalidate` push names (a null payload means every key).
    fn invalidated(&self, data: Vec<Value>, on_event: &mut impl FnMut(TrackingEvent)) {
        for item in data {
            match item {
                Value::Nil => on_event(TrackingEvent::FlushAll),
                Value::Array(keys) | Value::Set(keys) => {
                    for key in keys {
                        if let Some(id) = self.session_of(&key) {
                            on_event(TrackingEvent::Invalidated(id));
                        }
                    }
                }
                key => {
                    if let Some(id) = self.session_of(&key) {
                        on_event(TrackingEvent::Invalidated(id));
                    }
                }
            }
        }
    }

    /// The session whose record key is `key`; `None` for index keys and anything else.
    fn session_of(&self, key: &Value) -> Option<SessionId> {
        let bytes: &[u8] = match key {
            Value::BulkString(bytes) => bytes,
            Value::SimpleString(text) => text.as_bytes(),
            _ => return None,
        };
        let rest = bytes.strip_prefix(self.tracked.as_bytes())?;
        let text = std::str::from_utf8(rest).ok()?;
        let (_, id) = text.split_once("}:s:")?;
        id.parse().ok()
    }
}

/// Why one tracking connection ended.
struct LostReason {
    text: String,
    /// Tracking had been turned on (so the retry delay starts over).
    tracked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::UserId;

    #[test]
    fn only_session_keys_name_sessions() {
        let tracking = RedisTracking::new(&RedisConfig::new().with_key_prefix("app:")).unwrap();
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user);
        let key = format!("app:{{{}}}:s:{id}", id.tag());
        assert_eq!(
            tracking.session_of(&Value::BulkString(key.into_bytes())),
            Some(id)
        );
        let index = format!("app:{{{}}}:u:digest", id.tag());
        assert_eq!(
            tracking.session_of(&Value::BulkString(index.into_bytes())),
            None
        );
        let other = format!("other:{{{}}}:s:{id}", id.tag());
        assert_eq!(
            tracking.session_of(&Value::BulkString(other.into_bytes())),
            None
        );
    }

    #[test]
    fn sentinel_and_cluster_are_refused() {
        let config = RedisConfig::new()
            .with_cluster(crate::ClusterConfig::new(["127.0.0.1:7000"]))
            .with_key_prefix("app:");
        assert!(RedisTracking::new(&config).is_err());
    }
}
