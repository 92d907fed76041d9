//! `redis+cluster://[user:password@]host1[:port],host2[:port][/]` (`rediss+cluster://` for TLS):
//! the seed nodes a cluster store reads its slot map from, and the URL of each node it connects
//! to (with the seeds' scheme and credentials). A cluster has one database, so no `/<db>`. And
//! [`Cluster`], the routing state both engines keep (the map, whether it is doubtful, and the
//! connections of each node).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use super::cluster::SlotMap;
use super::protocol::{Reply, Request};
use super::sentinel::{addresses, split_userinfo};
use crate::error::{Error, Result};

/// The default port of a Redis node.
const REDIS_PORT: u16 = 6379;

/// A parsed `redis+cluster://` URL.
#[derive(Debug, Clone)]
pub(crate) struct ClusterUrl {
    /// Each seed node's `host:port`, asked in order for the slot map.
    pub(crate) seeds: Vec<String>,
    /// `redis` or `rediss`.
    scheme: &'static str,
    /// `user:password@`, or empty.
    userinfo: String,
}

impl ClusterUrl {
    /// The cluster URL `url` (without its `?query`), or `None` for another scheme.
    pub(crate) fn parse(url: &str) -> Result<Option<Self>> {
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis", rest)
        } else if let Some(rest) = url.strip_prefix("rediss+cluster://") {
            ("rediss", rest)
        } else {
            return Ok(None);
        };
        let bad = |why: &str| Error::invalid_argument(format!("bad redis+cluster URL {url:?}: {why}"));
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            Some(_) => return Err(bad("a cluster has one database: no /<db>")),
            None => rest,
        };
        let (userinfo, hosts) = split_userinfo(authority);
        let seeds = addresses(hosts, REDIS_PORT, &format!("{scheme}://{userinfo}"), "node", &bad)?;
        Ok(Some(Self { seeds, scheme, userinfo }))
    }

    /// The URL of the node at `address` (`host:port`), with this URL's scheme and credentials.
    pub(crate) fn node_url(&self, address: &str) -> String {
        format!("{}://{}{address}", self.scheme, self.userinfo)
    }

    /// The host part of `address`, for a node the slot map leaves without one.
    pub(crate) fn host_of(address: &str) -> &str {
        address
            .rsplit_once(':')
            .map_or(address, |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']')
    }
}

/// A cluster as an engine routes to it: its URL, the slot map, and the connections `P` of each
/// node (a blocking engine's idle ones, a tokio engine's multiplexed one).
pub(crate) struct Cluster<P> {
    url: ClusterUrl,
    map: RwLock<SlotMap>,
    /// A transport failure, a redirection or an unserved slot made the map doubtful: it is read
    /// again before the next request is routed.
    stale: AtomicBool,
    pub(crate) nodes: Mutex<HashMap<String, P>>,
    /// When each node last failed in transport: the map is read from the others first.
    failed_at: Mutex<HashMap<String, Instant>>,
    /// When a call last set out to read the map (see [`REREAD_AFTER`]).
    last_read: Mutex<Option<Instant>>,
}

/// How long a node that failed in transport is asked for the map only after the others.
const SHUNNED_FOR: Duration = Duration::from_secs(2);

/// The least time between two reads of the map by one store. Until a dead primary's replica is
/// promoted (seconds), every call to it fails and makes the map doubtful; read again by each
/// call, 8 threads sent the surviving nodes 18,676 and 30,804 `CLUSTER SLOTS` in two 2–2.5 s
/// failovers (`a_primary_killed_while_8_clients_run…`, tokio and blocking); at most one read per
/// 100 ms, 22 and 27. A `MOVED` is followed from its reply, without the map.
const REREAD_AFTER: Duration = Duration::from_millis(100);

impl<P> std::fmt::Debug for Cluster<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster of {:?}", self.url.seeds)
    }
}

impl<P> Cluster<P> {
    pub(crate) fn new(url: ClusterUrl) -> Self {
        Self {
            url,
            map: RwLock::default(),
            stale: AtomicBool::new(true),
            nodes: Mutex::new(HashMap::new()),
            failed_at: Mutex::new(HashMap::new()),
            last_read: Mutex::new(None),
        }
    }

    pub(crate) fn node_url(&self, address: &str) -> String {
        self.url.node_url(address)
    }

    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    /// The map is out of date: read it again before routing.
    pub(crate) fn doubt(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// `node` failed in transport (refused, timed out, dropped): it may be down or gone, so the
    /// map is read again, from the other nodes first.
    pub(crate) fn failed(&self, node: &str) {
        self.failed_at.lock().insert(node.to_owned(), Instant::now());
        self.doubt();
    }

    /// The nodes to read the map from, in order: the known primaries, then the seeds; a node that
    /// failed in the last [`SHUNNED_FOR`] after every other (a frozen or partitioned node would
    /// hold each read up for the whole timeout).
    pub(crate) fn nodes_to_ask(&self) -> Vec<String> {
        let mut nodes = self.map.read().primaries().to_vec();
        nodes.extend(self.url.seeds.iter().filter(|seed| !nodes.contains(seed)).cloned().collect::<Vec<_>>());
        let failed_at = self.failed_at.lock();
        nodes.sort_by_key(|node| failed_at.get(node).is_some_and(|at| at.elapsed() < SHUNNED_FOR));
        nodes
    }

    /// Takes the map `node` answered `CLUSTER SLOTS` with.
    pub(crate) fn update(&self, node: &str, reply: Reply) -> Result<()> {
        let map = SlotMap::parse(reply, ClusterUrl::host_of(node))?;
        if map.primaries().is_empty() {
            return Err(Error::unavailable(format!("redis cluster: {node} knows no slot's primary")));
        }
        *self.map.write() = map;
        self.stale.store(false, Ordering::Release);
        Ok(())
    }

    pub(crate) fn primaries(&self) -> Vec<String> {
        self.map.read().primaries().to_vec()
    }

    /// Whether the map must be read before `request` is routed: it is doubtful, the request is
    /// not a walk's keyless one (which goes to its walked node whatever the map says), and no
    /// read set out in the last [`REREAD_AFTER`] (unless no map was ever read). A `true` counts
    /// as that read setting out.
    pub(crate) fn map_needed(&self, request: &Request, walked: Option<&str>) -> bool {
        if !self.is_stale() || (request.keys.is_empty() && walked.is_some()) {
            return false;
        }
        let mut last_read = self.last_read.lock();
        let recent = last_read.is_some_and(|at| at.elapsed() < REREAD_AFTER);
        if recent && !self.map.read().primaries().is_empty() {
            return false;
        }
        *last_read = Some(Instant::now());
        true
    }

    /// The node `request` goes to: `walked` for a request without keys (a walk's `SCAN`),
    /// otherwise its slot's primary.
    pub(crate) fn node_for(&self, request: &Request, walked: Option<&str>) -> Result<String> {
        let map = self.map.read();
        if request.keys.is_empty() {
            return walked
                .map(str::to_owned)
                .or_else(|| map.primaries().first().cloned())
                .ok_or_else(|| Error::unavailable("redis cluster: no primary known"));
        }
        map.primary_for(request).map(str::to_owned).ok_or_else(|| {
            self.doubt();
            Error::unavailable(format!(
                "redis cluster: no primary serves slot {} (the cluster is changing); the request did not run",
                super::cluster::slot(request.keys[0].as_bytes())
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_name_their_seeds_and_credentials() {
        let url = ClusterUrl::parse("redis+cluster://app:pw@10.0.0.1,10.0.0.2:7001/")
            .expect("valid")
            .expect("cluster");
        assert_eq!(url.seeds, ["10.0.0.1:6379", "10.0.0.2:7001"]);
        assert_eq!(url.node_url("10.0.0.9:7005"), "redis://app:pw@10.0.0.9:7005");
        let tls = ClusterUrl::parse("rediss+cluster://[::1]:7000").expect("valid").expect("cluster");
        assert_eq!(tls.node_url("[::1]:7000"), "rediss://[::1]:7000");
        assert_eq!(ClusterUrl::host_of("[::1]:7000"), "::1");
        assert_eq!(ClusterUrl::host_of("10.0.0.1:7000"), "10.0.0.1");
        assert!(ClusterUrl::parse("redis://h/0").expect("valid").is_none());
        for bad in ["redis+cluster://", "redis+cluster://h,,k", "redis+cluster://h/0"] {
            let err = ClusterUrl::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_argument", "{bad}: {err}");
        }
    }
}
