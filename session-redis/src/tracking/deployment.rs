//! Which servers [`RedisTracking`](super::RedisTracking) follows in each topology, and the
//! checks that tell it the deployment changed under it.
//!
//! - Standalone: the one server.
//! - Sentinel: the master the sentinels name. Every reachable sentinel is asked, and followed
//!   on a connection subscribed to `+switch-master`: a sentinel publishes it the moment it names
//!   another master, and the heartbeat asks each sentinel again (and tries the ones that could
//!   not be reached at the start: one that answers ends the round, so the next follows it).
//! - Cluster: every master `CLUSTER NODES` lists (those without slots included, so keys moved
//!   to a node during a resharding are tracked there too; a master marked failed is left out
//!   only once it serves no slot). The heartbeat asks each tracked
//!   master for the layout again; any change (a failover, a node added or removed, slots
//!   reassigned) is reported.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, PushInfo, PushKind, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{RedisConfig, Topology, parse_node};
use crate::connection::{NodeRole, OpenError, resp3_node, resp3_standalone};

/// The pub/sub channel on which a sentinel announces that it names a new master.
const SWITCH_MASTER: &str = "+switch-master";

/// A server and a RESP3 client of it.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// `host:port`, for messages.
    pub(super) target: String,
    pub(super) client: Client,
}

impl Node {
    /// A data node (a Sentinel master, a Cluster master) at `host:port`, with the store's
    /// credentials.
    fn data(config: &RedisConfig, host: &str, port: u16) -> Result<Self, String> {
        Ok(Self {
            target: format!("{host}:{port}"),
            client: resp3_node(config, host.to_owned(), port, &NodeRole::Data)
                .map_err(|e| e.to_string())?,
        })
    }
}

/// A connection and the server it goes to, for messages.
pub(super) type Conn = (String, MultiplexedConnection);

/// How long one connection attempt and one command may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub(super) connect: Duration,
    pub(super) response: Duration,
}

impl Bounds {
    /// Opens a connection to `node`, its push messages sent to `pushes` when given.
    pub(super) async fn connect(
        self,
        node: &Node,
        pushes: Option<&UnboundedSender<PushInfo>>,
    ) -> Result<Conn, String> {
        let mut config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect))
            .set_response_timeout(Some(self.response));
        if let Some(pushes) = pushes {
            config = config.set_push_sender(pushes.clone());
        }
        let bound = self.connect + self.response;
        let conn = tokio::time::timeout(
            bound,
            node.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await
        .map_err(|_| format!("no connection to {} within {bound:?}", node.target))?
        .map_err(|e| format!("cannot connect to {}: {e}", node.target))?;
        Ok((node.target.clone(), conn))
    }

    /// Runs `cmd` (named `what` in messages) on `conn`, bounded by the response timeout.
    pub(super) async fn query<T: FromRedisValue>(
        self,
        conn: &mut Conn,
        cmd: &redis::Cmd,
        what: &str,
    ) -> Result<T, String> {
        let (target, conn) = conn;
        tokio::time::timeout(self.response, cmd.query_async::<T>(conn))
            .await
            .map_err(|_| {
                format!(
                    "no answer from {target} to {what} within {:?}",
                    self.response
                )
            })?
            .map_err(|e| format!("{what} failed on {target}: {e}"))
    }
}

/// The deployment a tracking follows, as configured.
#[derive(Debug, Clone)]
pub(super) enum Deployment {
    /// One server.
    Standalone(Box<Node>),
    /// The master the sentinels name.
    Sentinel {
        master_name: String,
        sentinels: Vec<Node>,
        config: Box<RedisConfig>,
    },
    /// Every master of the cluster the seeds belong to.
    Cluster {
        seeds: Vec<Node>,
        config: Box<RedisConfig>,
    },
}

/// The servers to track for now, and the watch that says when they stop being the right ones.
pub(super) struct Plan {
    pub(super) nodes: Vec<Node>,
    pub(super) watch: Watch,
}

impl Deployment {
    /// The deployment `config` describes. Contacts nothing.
    pub(super) fn new(config: &RedisConfig) -> Result<Self, OpenError> {
        let nodes = |addresses: &[String], role: &NodeRole<'_>| {
            addresses
                .iter()
                .map(|address| {
                    let (host, port) = parse_node("topology.nodes", address)?;
                    Ok(Node {
                        target: address.clone(),
                        client: resp3_node(config, host, port, role)?,
                    })
                })
                .collect::<Result<Vec<_>, OpenError>>()
        };
        Ok(match &config.topology {
            Topology::Standalone => {
                let (client, target) = resp3_standalone(config)?;
                Self::Standalone(Box::new(Node { target, client }))
            }
            Topology::Sentinel(sentinel) => Self::Sentinel {
                master_name: sentinel.master_name.clone(),
                sentinels: nodes(&sentinel.nodes, &NodeRole::Sentinel(sentinel))?,
                config: Box::new(config.clone()),
            },
            Topology::Cluster(cluster) => Self::Cluster {
                seeds: nodes(&cluster.nodes, &NodeRole::Data)?,
                config: Box::new(config.clone()),
            },
        })
    }

    /// Finds the servers to track now. For Sentinel, the sentinels' connections are opened
    /// here, subscribed, their push messages sent to `pushes`.
    pub(super) async fn plan(
        &self,
        bounds: Bounds,
        pushes: &UnboundedSender<PushInfo>,
    ) -> Result<Plan, String> {
        match self {
            Self::Standalone(node) => Ok(Plan {
                nodes: vec![Node::clone(node)],
                watch: Watch::Nothing,
            }),
            Self::Sentinel {
                master_name,
                sentinels,
                config,
            } => {
                let mut watched = Vec::with_capacity(sentinels.len());
                let mut unfollowed = Vec::new();
                let mut master: Option<(String, u16)> = None;
                let mut first_error = None;
                for sentinel in sentinels {
                    match follow_sentinel(bounds, sentinel, master_name, pushes).await {
                        Ok((conn, named)) => {
                            if let Some(known) = &master
                                && *known != named
                            {
                                return Err(format!(
                                    "the sentinels name two masters for `{master_name}` \
                                     ({}:{} and {}:{}): a failover is under way",
                                    known.0, known.1, named.0, named.1
                                ));
                            }
                            master = Some(named);
                            watched.push(conn);
                        }
                        Err(error) => {
                            first_error.get_or_insert(error);
                            unfollowed.push(sentinel.clone());
                        }
                    }
                }
                let Some((host, port)) = master else {
                    return Err(first_error.unwrap_or_else(|| "no sentinel configured".to_owned()));
                };
                let node = Node::data(config, &host, port)?;
                Ok(Plan {
                    nodes: vec![node],
                    watch: Watch::Sentinel {
                        master_name: master_name.clone(),
                        master: (host, port),
                        sentinels: watched,
                        unfollowed,
                    },
                })
            }
            Self::Cluster { seeds, config } => {
                let mut first_error = None;
                for seed in seeds {
                    let layout = match bounds.connect(seed, None).await {
                        Ok(mut conn) => Layout::read(bounds, &mut conn).await,
                        Err(error) => Err(error),
                    };
                    match layout {
                        Ok(layout) => {
                            let nodes = layout
                                .masters
                                .keys()
                                .map(|(host, port)| Node::data(config, host, *port))
                                .collect::<Result<Vec<_>, String>>()?;
                            return Ok(Plan {
                                nodes,
                                watch: Watch::Cluster { layout },
                            });
                        }
                        Err(error) => {
                            first_error.get_or_insert(error);
                        }
                    }
                }
                Err(first_error.unwrap_or_else(|| "no Cluster seed node configured".to_owned()))
            }
        }
    }
}

/// Opens a connection to `sentinel` subscribed to [`SWITCH_MASTER`] (its messages sent to
/// `pushes`), then asks it for the master: subscribed first, so a switch right after the answer
/// is announced on it.
async fn follow_sentinel(
    bounds: Bounds,
    sentinel: &Node,
    master_name: &str,
    pushes: &UnboundedSender<PushInfo>,
) -> Result<(Conn, (String, u16)), String> {
    let mut conn = bounds.connect(sentinel, Some(pushes)).await?;
    tokio::time::timeout(bounds.response, conn.1.subscribe(SWITCH_MASTER))
        .await
        .map_err(|_| {
            format!(
                "no answer from the sentinel {} to SUBSCRIBE",
                sentinel.target
            )
        })?
        .map_err(|e| format!("SUBSCRIBE failed on the sentinel {}: {e}", sentinel.target))?;
    let master = master_named(bounds, &mut conn, master_name).await?;
    Ok((conn, master))
}

/// The master the sentinel on `conn` names `master_name`.
async fn master_named(
    bounds: Bounds,
    conn: &mut Conn,
    master_name: &str,
) -> Result<(String, u16), String> {
    let ask = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(master_name)
        .clone();
    bounds
        .query::<Option<(String, u16)>>(conn, &ask, "SENTINEL GET-MASTER-ADDR-BY-NAME")
        .await?
        .ok_or_else(|| format!("the sentinel {} knows no master `{master_name}`", conn.0))
}

/// What tells a tracking that the servers it follows are no longer the deployment's.
pub(super) enum Watch {
    /// A standalone server: nothing to watch.
    Nothing,
    /// The sentinels, each on a connection subscribed to [`SWITCH_MASTER`].
    Sentinel {
        master_name: String,
        master: (String, u16),
        sentinels: Vec<Conn>,
        /// The sentinels that could not be reached when the round started: one that answers
        /// again ends the round, so that the next one follows it too.
        unfollowed: Vec<Node>,
    },
    /// The Cluster's layout when tracking started.
    Cluster { layout: Layout },
}

impl Watch {
    /// Checks that the tracked servers (`tracked`) are still the deployment's: each sentinel
    /// still names the tracked master (at least one must answer), or each tracked Cluster
    /// master still sees the layout tracking started with. `Err` says what changed.
    pub(super) async fn check(
        &mut self,
        bounds: Bounds,
        tracked: &mut [Conn],
    ) -> Result<(), String> {
        match self {
            Self::Nothing => Ok(()),
            Self::Sentinel {
                master_name,
                master,
                sentinels,
                unfollowed,
            } => {
                let mut answered = false;
                let mut first_error = None;
                for conn in sentinels.iter_mut() {
                    match master_named(bounds, conn, master_name).await {
                        Ok(named) if named == *master => answered = true,
                        Ok(named) => {
                            return Err(format!(
                                "the sentinel {} names {}:{} the master `{master_name}`, \
                                 where {}:{} is tracked",
                                conn.0, named.0, named.1, master.0, master.1
                            ));
                        }
                        Err(error) => {
                            first_error.get_or_insert(error);
                        }
                    }
                }
                if let Some(error) = first_error
                    && !answered
                {
                    return Err(format!("no sentinel answered: {error}"));
                }
                for sentinel in unfollowed.iter() {
                    if let Ok(mut conn) = bounds.connect(sentinel, None).await
                        && master_named(bounds, &mut conn, master_name).await.is_ok()
                    {
                        return Err(format!(
                            "the sentinel {} answers again: tracking starts over to follow it",
                            sentinel.target
                        ));
                    }
                }
                Ok(())
            }
            Self::Cluster { layout } => {
                for conn in tracked.iter_mut() {
                    let seen = Layout::read(bounds, conn).await?;
                    if seen != *layout {
                        return Err(format!(
                            "the Cluster's layout changed (as {} sees it)",
                            conn.0
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether [`Watch::check`] sends a command to every tracked server (a Cluster's layout
    /// check), so that it is also their heartbeat.
    pub(super) fn queries_tracked(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// The Sentinel master name whose `+switch-master` announcements end the round, if the
    /// deployment is a Sentinel one.
    pub(super) fn followed_master(&self) -> Option<&str> {
        match self {
            Self::Sentinel { master_name, .. } => Some(master_name),
            _ => None,
        }
    }
}

/// Whether `push` is a sentinel's announcement of a new master for `master_name`.
pub(super) fn announces_failover(master_name: &str, push: &PushInfo) -> bool {
    if push.kind != PushKind::Message {
        return false;
    }
    // `message` pushes carry [channel, payload]; the payload of `+switch-master` is
    // `<master name> <old ip> <old port> <new ip> <new port>`.
    match push.data.get(1) {
        Some(Value::BulkString(payload)) => payload
            .split(|b| *b == b' ')
            .next()
            .is_some_and(|name| name == master_name.as_bytes()),
        // Anything else on the channel: take it as a switch, which is always safe.
        _ => true,
    }
}

/// The masters of a Cluster and the slots each serves, as one node's `CLUSTER NODES` lists
/// them. Masters without slots are included (unless marked failed, in handshake or without
/// address); masters with slots always are, whatever their flags; slots being imported or
/// migrated are not (both nodes of a migration are tracked masters), and neither are flags
/// such as `myself`, so every node of a settled cluster reports the same layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    masters: BTreeMap<(String, u16), Vec<String>>,
}

impl Layout {
    /// The layout as the node on `conn` sees it.
    async fn read(bounds: Bounds, conn: &mut Conn) -> Result<Self, String> {
        let text: String = bounds
            .query(
                conn,
                &redis::cmd("CLUSTER").arg("NODES").clone(),
                "CLUSTER NODES",
            )
            .await?;
        let own_host = conn.0.rsplit_once(':').map_or("", |(host, _)| host);
        Self::parse(&text, own_host).map_err(|e| format!("{e} (from {})", conn.0))
    }

    /// Parses a `CLUSTER NODES` reply; `own_host` stands in for the replying node's own
    /// address when it does not know it yet (an empty host).
    fn parse(text: &str, own_host: &str) -> Result<Self, String> {
        let mut masters = BTreeMap::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
                return Err(format!(
                    "a CLUSTER NODES line has no address or flags: `{line}`"
                ));
            };
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") {
                continue;
            }
            let slots: Vec<String> = fields
                .get(8..)
                .unwrap_or_default()
                .iter()
                .filter(|slot| !slot.starts_with('['))
                .map(|slot| (*slot).to_owned())
                .collect();
            // A master marked failed (or not yet met) is left out only once it serves no slot:
            // one that still does may take writes again (a partition that heals before its
            // replica is promoted), so it is tracked, and a round that cannot reach it fails.
            if slots.is_empty()
                && flags
                    .iter()
                    .any(|flag| matches!(*flag, "fail" | "handshake" | "noaddr"))
            {
                continue;
            }
            // `ip:port@cport[,hostname]`; an empty ip is the replying node not knowing its own.
            let address = address.split(['@', ',']).next().unwrap_or_default();
            let address = match address.rsplit_once(':') {
                Some(("", port)) => format!("{own_host}:{port}"),
                _ => address.to_owned(),
            };
            let node = parse_node("CLUSTER NODES", &address).map_err(|e| e.to_string())?;
            masters.insert(node, slots);
        }
        if masters.is_empty() {
            return Err("CLUSTER NODES lists no master".to_owned());
        }
        Ok(Self { masters })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:7011@17011 master - 0 1426238317239 2 connected 5461-10922
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:7010@17010,node-a myself,master - 0 0 1 connected 0-5460 [5461->-07c37dfeb235213a872192d90877d0cd55635b91]
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:7012@17012 master - 0 1426238316232 3 connected 10923-16383
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 127.0.0.1:7013@17013 slave 67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 0 1426238316232 1 connected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:7014@17014 master,fail - 1426238316232 1426238316232 4 disconnected
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:7015@17015 master - 0 1426238317741 5 connected
";

    #[test]
    fn layout_lists_masters_and_their_slots() {
        let layout = Layout::parse(NODES, "127.0.0.1").unwrap();
        let masters: Vec<_> = layout.masters.iter().collect();
        assert_eq!(
            masters,
            [
                (&("127.0.0.1".to_owned(), 7010), &vec!["0-5460".to_owned()]),
                (
                    &("127.0.0.1".to_owned(), 7011),
                    &vec!["5461-10922".to_owned()]
                ),
                (
                    &("127.0.0.1".to_owned(), 7012),
                    &vec!["10923-16383".to_owned()]
                ),
                (&("127.0.0.1".to_owned(), 7015), &vec![]),
            ]
        );
    }

    #[test]
    fn layouts_seen_from_two_nodes_agree() {
        // The same cluster as 7011 sees it: `myself` moved, no migration marker on 7010.
        let other = NODES
            .replace("myself,master", "master")
            .replace(" [5461->-07c37dfeb235213a872192d90877d0cd55635b91]", "")
            .replace("7011@17011 master", "7011@17011 myself,master");
        assert_eq!(
            Layout::parse(NODES, "127.0.0.1").unwrap(),
            Layout::parse(&other, "127.0.0.1").unwrap()
        );
        let moved = NODES.replace("0-5460", "0-5459");
        assert_ne!(
            Layout::parse(NODES, "127.0.0.1").unwrap(),
            Layout::parse(&moved, "127.0.0.1").unwrap()
        );
    }

    #[test]
    fn a_node_without_its_own_address_is_named_by_ours() {
        let text = "abc :7010@17010 myself,master - 0 0 1 connected 0-16383\n";
        let layout = Layout::parse(text, "10.0.0.5").unwrap();
        assert!(layout.masters.contains_key(&("10.0.0.5".to_owned(), 7010)));
    }

    #[test]
    fn malformed_replies_are_refused() {
        assert!(Layout::parse("", "h").is_err());
        assert!(Layout::parse("abc\n", "h").is_err());
        assert!(Layout::parse("abc 127.0.0.1:x@1 master - 0 0 1 connected\n", "h").is_err());
    }

    #[test]
    fn only_a_switch_of_the_tracked_master_ends_tracking() {
        let message = |payload: &str| PushInfo {
            kind: PushKind::Message,
            data: vec![
                Value::BulkString(SWITCH_MASTER.as_bytes().to_vec()),
                Value::BulkString(payload.as_bytes().to_vec()),
            ],
        };
        assert!(announces_failover(
            "main",
            &message("main 127.0.0.1 6390 127.0.0.1 6391")
        ));
        assert!(!announces_failover(
            "main",
            &message("other 127.0.0.1 6490 127.0.0.1 6491")
        ));
        assert!(!announces_failover(
            "main",
            &message("mainly 127.0.0.1 6490 127.0.0.1 6491")
        ));
        let subscribed = PushInfo {
            kind: PushKind::Subscribe,
            data: vec![
                Value::BulkString(SWITCH_MASTER.as_bytes().to_vec()),
                Value::Int(1),
            ],
        };
        assert!(!announces_failover("main", &subscribed));
        assert_eq!(Watch::Nothing.followed_master(), None);
    }

    #[test]
    fn a_failed_master_that_serves_slots_stays_tracked() {
        let text = "\
a 127.0.0.1:7010@17010 myself,master - 0 0 1 connected 0-8191
b 127.0.0.1:7011@17011 master,fail - 0 0 2 disconnected 8192-16383
c 127.0.0.1:7012@17012 master,fail - 0 0 3 disconnected
";
        let layout = Layout::parse(text, "127.0.0.1").unwrap();
        let tracked: Vec<u16> = layout.masters.keys().map(|(_, port)| *port).collect();
        assert_eq!(tracked, [7010, 7011]);
    }

    #[test]
    fn ipv6_addresses_parse() {
        let text = "a ::1:7010@17010 myself,master - 0 0 1 connected 0-16383\n";
        let layout = Layout::parse(text, "10.0.0.5").unwrap();
        assert!(
            layout.masters.contains_key(&("::1".to_owned(), 7010)),
            "{layout:?}"
        );
    }
}
