//! [`RedisStore::stats`]: counts every session record under the store's prefix, node by node.

use std::collections::BTreeMap;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Value};
use session_core::{Error, SessionId, StatsCounter, StoreStats};
use time::OffsetDateTime;

use super::RedisStore;
use crate::codec;
use crate::connection::{Backend, Conn};
use crate::error::StoreError;
use crate::ops::{Request, decode_value};

/// Keys asked for per `SCAN` step.
const SCAN_COUNT: u64 = 1000;

/// `text` with the glob characters of a `SCAN … MATCH` pattern escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The session id and routing tag text of a session key `<prefix>{<tag>}:s:<id>`, if it is one.
fn session_of(key: &[u8], prefix: &str) -> Option<(String, SessionId)> {
    let rest = std::str::from_utf8(key).ok()?.strip_prefix(prefix)?;
    let rest = rest.strip_prefix('{')?;
    let (tag, id) = rest.split_once("}:s:")?;
    let id: SessionId = id.parse().ok()?;
    (id.tag().to_string() == tag).then(|| (tag.to_owned(), id))
}

/// The address of every primary of a Cluster, from `CLUSTER SLOTS`.
fn primaries(reply: Value) -> Result<Vec<(String, u16)>, StoreError> {
    let ranges: Vec<Vec<Value>> = decode_value(reply)?;
    let mut nodes = Vec::new();
    for range in ranges {
        let Some(primary) = range.into_iter().nth(2) else {
            return Err(StoreError::Decode(
                "a CLUSTER SLOTS entry names no primary".to_owned(),
            ));
        };
        let node: Vec<Value> = decode_value(primary)?;
        let mut fields = node.into_iter();
        let (Some(host), Some(port)) = (fields.next(), fields.next()) else {
            return Err(StoreError::Decode(
                "a CLUSTER SLOTS primary has no address".to_owned(),
            ));
        };
        let address = (decode_value::<String>(host)?, decode_value::<u16>(port)?);
        if !nodes.contains(&address) {
            nodes.push(address);
        }
    }
    Ok(nodes)
}

impl RedisStore {
    /// Counts every session record under the store's key prefix as it stands at `now`: see
    /// [`StoreStats`] for what each count holds.
    ///
    /// Walks the keys with `SCAN … MATCH <prefix>{*}:s:*` on the standalone server, the
    /// Sentinel master, or every Cluster primary (from `CLUSTER SLOTS`), and reads each page's
    /// records with one `MGET` per hash slot. O(keys of the database) commands' worth of work
    /// on the server, spread over many short calls (no call blocks the server for long), each
    /// bounded by [`RedisConfig::response_timeout`](crate::RedisConfig::response_timeout).
    /// The counts are not a snapshot: records written or dropped during the walk may be
    /// counted or not (a `SCAN` returns every key present for the whole walk at least once; a
    /// key it returns twice is counted once per page it is in). Most expired records are
    /// never seen: Redis drops each at its TTL. A value that is not a record of this store's
    /// format is counted as `unreadable`. Memory: one entry per distinct user with a live
    /// session.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when a server cannot be reached or does not answer in time,
    /// [`Error::Backend`] when one refuses a command.
    pub async fn stats(&self, now: OffsetDateTime) -> Result<StoreStats, Error> {
        Ok(self.stats_inner(now).await?)
    }

    /// `call` bounded by the response timeout, for the commands [`RedisStore::call`] cannot
    /// send (routed to one Cluster node by address).
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.inner.timeout, call)
            .await
            .unwrap_or(Err(StoreError::TimedOut(self.inner.timeout)))
    }

    async fn stats_inner(&self, now: OffsetDateTime) -> Result<StoreStats, StoreError> {
        let prefix = self.inner.keys.prefix();
        let pattern = format!("{}{{*}}:s:*", glob_escape(prefix));
        let mut counter = StatsCounter::new(now);
        let nodes = match &self.inner.backend {
            Backend::Single(_) => vec![None],
            Backend::Cluster(cluster) => {
                let mut conn = cluster.clone();
                let reply = self
                    .bounded(async {
                        Ok(conn
                            .route_command(
                                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                            )
                            .await?)
                    })
                    .await?;
                primaries(reply)?.into_iter().map(Some).collect()
            }
        };
        for node in nodes {
            let mut cursor = 0_u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let (next, keys): (u64, Vec<Vec<u8>>) =
                    decode_value(self.scan_on(node.as_ref(), scan).await?)?;
                self.count_page(&keys, prefix, &mut counter).await?;
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(counter.finish())
    }

    /// Sends one `SCAN` step to `node` (a Cluster primary, routed by address) or, without one,
    /// to the single server through [`RedisStore::call`].
    async fn scan_on(&self, node: Option<&(String, u16)>, scan: Cmd) -> Result<Value, StoreError> {
        let Some((host, port)) = node else {
            return self.call(&Request::Command(scan)).await;
        };
        self.bounded(async {
            let mut lease = self.inner.backend.lease().await?;
            let Conn::Cluster(conn) = &mut lease.conn else {
                return Err(StoreError::Decode(
                    "a Cluster node was named for a single server".to_owned(),
                ));
            };
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                host: host.clone(),
                port: *port,
            });
            Ok(conn.route_command(scan, routing).await?)
        })
        .await
    }

    /// Reads the records of one page of keys (one `MGET` per hash slot) and counts them.
    async fn count_page(
        &self,
        keys: &[Vec<u8>],
        prefix: &str,
        counter: &mut StatsCounter,
    ) -> Result<(), StoreError> {
        let mut by_slot: BTreeMap<String, Vec<(&[u8], SessionId)>> = BTreeMap::new();
        for key in keys {
            match session_of(key, prefix) {
                Some((tag, id)) => by_slot.entry(tag).or_default().push((key, id)),
                None => counter.count_unreadable(),
            }
        }
        for group in by_slot.values() {
            let mut mget = redis::cmd("MGET");
            for (key, _) in group {
                mget.arg(*key);
            }
            let values: Vec<Option<Vec<u8>>> =
                decode_value(self.call(&Request::Command(mget)).await?)?;
            for ((_, id), value) in group.iter().zip(values) {
                // A key dropped between the SCAN and the MGET (its TTL) is not counted.
                if let Some(bytes) = value {
                    match codec::decode(*id, &bytes) {
                        Ok(record) => counter.count(&record),
                        Err(_) => counter.count_unreadable(),
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use session_core::UserId;

    use super::*;

    #[test]
    fn patterns_escape_globs() {
        assert_eq!(glob_escape("auth:"), "auth:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn only_session_keys_of_the_prefix_parse() {
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user);
        let key = format!("auth:{{{}}}:s:{id}", id.tag());
        assert_eq!(
            session_of(key.as_bytes(), "auth:").map(|(_, s)| s),
            Some(id)
        );
        assert_eq!(session_of(key.as_bytes(), "other:"), None);
        let wrong_tag = format!("auth:{{ffff}}:s:{id}");
        if id.tag().to_string() != "ffff" {
            assert_eq!(session_of(wrong_tag.as_bytes(), "auth:"), None);
        }
        assert_eq!(session_of(b"auth:{0000}:s:not-an-id", "auth:"), None);
        assert_eq!(session_of(b"\xff\xfe", "auth:"), None);
    }
}
