//! Redis Cluster, sans-IO: which node each request goes to, and what a node's redirection means
//! — for every host that carries the protocol over a cluster (the blocking store, tokio, a
//! JavaScript host's clients).
//!
//! Every request touches the keys of one hash tag ([`super::protocol`]), so of one slot: it goes
//! to the primary that [`SlotMap`] (from `CLUSTER SLOTS`) says serves that slot. A request
//! without keys (`SCAN`, `CONFIG GET`) goes to the node the host walks. A reply then says what
//! happened ([`Redirection`]): only replies that prove the request **did not run** on the node
//! that gave them are followed by sending it again; a transport failure (a timeout, a socket
//! closed after the write) is never resent — its outcome is unknown and reported as such. A
//! cluster client that retries on I/O errors (redis-rs's does, 16 times by default) can apply a
//! grant or a mark twice; racefree's hosts follow this module instead.

use std::time::Duration;

use crate::error::{Error, Result};

use super::protocol::{Reply, Request};

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// How many times one request follows a redirection before the host gives up with
/// `backend_unavailable` (the request never ran): a slot moving twice while one request is
/// carried is already rare.
pub const MAX_REDIRECTIONS: u32 = 5;

/// The slot of `key`: CRC16 (XMODEM) of its hash tag — the part between the first `{` and the
/// next `}` when that part is not empty — or of the whole key, modulo [`SLOTS`].
///
/// ```
/// use racefree::store::redis::cluster::slot;
///
/// assert_eq!(slot(b"foo"), 12182);
/// assert_eq!(slot(b"rf:{4:app5:tasks}l:report:7"), slot(b"rf:{4:app5:tasks}t"));
/// ```
#[must_use]
pub fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the one Redis Cluster hashes by.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 == 0 { crc << 1 } else { (crc << 1) ^ 0x1021 };
        }
        crc
    })
}

/// Which primary serves each slot: `CLUSTER SLOTS` decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotMap {
    /// `(first slot, last slot, index into primaries)`, sorted by first slot.
    ranges: Vec<(u16, u16, usize)>,
    /// Each primary's `host:port`, once.
    primaries: Vec<String>,
}

impl SlotMap {
    /// The request that reads the map: `CLUSTER SLOTS` (sent to any node).
    #[must_use]
    pub fn request() -> Request {
        Request::plain("CLUSTER", Vec::new(), vec!["SLOTS".to_owned()])
    }

    /// The map `reply` (to [`SlotMap::request`]) describes. `asked_host` stands in for a node
    /// whose host the reply leaves empty (a node that does not know its own address says so).
    ///
    /// # Errors
    /// [`Error::CorruptData`] for a reply of another shape; an error reply is decoded as by
    /// [`Reply::into_result`].
    pub fn parse(reply: Reply, asked_host: &str) -> Result<Self> {
        let bad = |why: &str| Error::corrupt(format!("redis: CLUSTER SLOTS: {why}"));
        let Reply::Array(entries) = reply.into_result()? else { return Err(bad("not an array")) };
        let mut map = Self::default();
        for entry in entries {
            let Reply::Array(parts) = entry else { return Err(bad("an entry that is not an array")) };
            let [Reply::Int(first), Reply::Int(last), Reply::Array(primary), ..] = parts.as_slice() else {
                return Err(bad("an entry without first slot, last slot and primary"));
            };
            let (first, last) = match (u16::try_from(*first), u16::try_from(*last)) {
                (Ok(first), Ok(last)) if first <= last && last < SLOTS => (first, last),
                _ => return Err(bad(&format!("a slot range {first}..{last}"))),
            };
            let [Reply::Data(host), Reply::Int(port), ..] = primary.as_slice() else {
                return Err(bad("a primary without host and port"));
            };
            let host = std::str::from_utf8(host).map_err(|_| bad("a host that is not UTF-8"))?;
            let host = if host.is_empty() || host == "?" { asked_host } else { host };
            let port = u16::try_from(*port).map_err(|_| bad(&format!("a port {port}")))?;
            let address =
                if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            let index = match map.primaries.iter().position(|known| *known == address) {
                Some(index) => index,
                None => {
                    map.primaries.push(address);
                    map.primaries.len() - 1
                }
            };
            map.ranges.push((first, last, index));
        }
        map.ranges.sort_unstable();
        Ok(map)
    }

    /// The primary (`host:port`) serving `slot`, if any does.
    #[must_use]
    pub fn primary_of(&self, slot: u16) -> Option<&str> {
        let at = self.ranges.partition_point(|&(first, _, _)| first <= slot);
        let &(_, last, index) = self.ranges.get(at.checked_sub(1)?)?;
        (slot <= last).then(|| self.primaries[index].as_str())
    }

    /// The primary a request goes to: its first key's slot's (a request without keys has none:
    /// it goes to the node the host walks).
    #[must_use]
    pub fn primary_for(&self, request: &Request) -> Option<&str> {
        self.primary_of(slot(request.keys.first()?.as_bytes()))
    }

    /// Every primary, each once.
    #[must_use]
    pub fn primaries(&self) -> &[String] {
        &self.primaries
    }
}

/// What a node's reply to a request means for where the request goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirection {
    /// The node ran it (or refused it for a reason of the request's own): this is the reply.
    Answered,
    /// `MOVED <slot> <host:port>`: the slot lives on that node now; the request did not run.
    /// Send it there, and read the slot map again.
    Moved(String),
    /// `ASK <slot> <host:port>`: the slot is migrating and the key is already there; the request
    /// did not run. Send `ASKING` and then the request to that node, on one connection; the map
    /// stays.
    Ask(String),
    /// `TRYAGAIN` (a multi-key request during a migration), `CLUSTERDOWN` (the cluster cannot
    /// serve the slot now) or `LOADING` (the node is loading its data): the request did not
    /// run. Send it again after a pause, within the request's timeout.
    TryLater,
    /// `READONLY` or `MASTERDOWN`: the node is a replica now (a failover demoted it); the request
    /// did not run. Read the slot map again and send it to the slot's primary.
    Refresh,
}

/// What `reply`, to `request` (or to it with what follows it, `Request::wait`), means for where it goes next.
#[must_use]
pub fn redirection(request: &Request, reply: &Reply) -> Redirection {
    let Some(Reply::Error { code, message }) = request.own_reply(reply) else { return Redirection::Answered };
    // `MOVED 3999 127.0.0.1:6381`: the code, then the slot and the address.
    let address = || message.split_whitespace().nth(1).map(str::to_owned);
    match code.as_str() {
        "MOVED" => address().map_or(Redirection::Answered, Redirection::Moved),
        "ASK" => address().map_or(Redirection::Answered, Redirection::Ask),
        "TRYAGAIN" | "CLUSTERDOWN" | "LOADING" => Redirection::TryLater,
        "READONLY" | "MASTERDOWN" => Redirection::Refresh,
        _ => Redirection::Answered,
    }
}

/// The error when no node answered `CLUSTER SLOTS` with a map (the last failure, if any).
#[must_use]
pub fn no_map(last: Option<Error>) -> Error {
    let why = last.map_or_else(|| "no node to ask".to_owned(), |err| err.to_string());
    Error::unavailable(format!("redis cluster: no node gave its slot map: {why}"))
}

/// One request carried through a cluster: where it goes next and what each reply means — the
/// loop every host runs, as data. The host asks [`redirected`](Carrying::redirected) where to
/// send (or routes by its [`SlotMap`] when that says nothing), sends (`ASKING` first, in the same
/// pipeline, when told), and hands the reply to [`on_reply`](Carrying::on_reply). A transport
/// failure ends the loop at the host: it is never sent again.
#[derive(Debug)]
pub struct Carrying {
    next: Option<(String, bool)>,
    redirections: u32,
    pause: Duration,
    last: Redirection,
}

/// What a host does after a reply ([`Carrying::on_reply`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Carry {
    /// The reply is the request's: hand it to the operation.
    Answered,
    /// Send the request again; with `read_map`, read the slot map first (it is out of date).
    SendAgain {
        /// Whether the slot map is out of date.
        read_map: bool,
    },
    /// Wait this long, then send the request again.
    PauseThenSendAgain(Duration),
    /// Give up with this error (`backend_unavailable`: the request never ran).
    GiveUp(Error),
}

impl Default for Carrying {
    fn default() -> Self {
        Self::new()
    }
}

impl Carrying {
    /// A request not sent yet.
    #[must_use]
    pub fn new() -> Self {
        Self { next: None, redirections: 0, pause: Duration::from_millis(10), last: Redirection::Answered }
    }

    /// Where the last reply sent the request — the node, and whether `ASKING` goes first — or
    /// `None`: to the primary the slot map names.
    pub fn redirected(&mut self) -> Option<(String, bool)> {
        self.next.take()
    }

    /// What `reply` (to `request`) means, `elapsed` after the request was first sent, for a
    /// request that may take `timeout`.
    pub fn on_reply(
        &mut self,
        request: &Request,
        reply: &Reply,
        elapsed: Duration,
        timeout: Duration,
    ) -> Carry {
        self.last = redirection(request, reply);
        if self.last == Redirection::Answered {
            return Carry::Answered;
        }
        self.redirections += 1;
        if self.redirections > MAX_REDIRECTIONS {
            return Carry::GiveUp(self.gave_up(request));
        }
        match &self.last {
            Redirection::Moved(to) => {
                self.next = Some((to.clone(), false));
                Carry::SendAgain { read_map: true }
            }
            Redirection::Ask(to) => {
                self.next = Some((to.clone(), true));
                Carry::SendAgain { read_map: false }
            }
            Redirection::Refresh => Carry::SendAgain { read_map: true },
            Redirection::TryLater => {
                let pause = self.pause;
                if elapsed + pause >= timeout {
                    return Carry::GiveUp(self.gave_up(request));
                }
                self.pause *= 2;
                Carry::PauseThenSendAgain(pause)
            }
            Redirection::Answered => Carry::Answered,
        }
    }

    fn gave_up(&self, request: &Request) -> Error {
        Error::unavailable(format!(
            "redis cluster: {} was not served after {} redirections (last: {:?}); it did not run",
            request.command.name(),
            self.redirections,
            self.last
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // Values from Redis' own cluster spec and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"), "an empty tag hashes the whole key");
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    fn entry(first: i64, last: i64, host: &str, port: i64) -> Reply {
        Reply::Array(vec![
            Reply::Int(first),
            Reply::Int(last),
            Reply::Array(vec![Reply::Data(host.into()), Reply::Int(port), Reply::Data(b"id".to_vec())]),
            Reply::Array(vec![Reply::Data(host.into()), Reply::Int(port + 3)]),
        ])
    }

    #[test]
    fn the_slot_map_finds_each_slots_primary() {
        let reply = Reply::Array(vec![
            entry(5461, 10922, "10.0.0.2", 7001),
            entry(0, 99, "", 7000),
            entry(10923, 16383, "10.0.0.3", 7002),
            entry(100, 100, "10.0.0.3", 7002), // one slot moved on its own
            entry(101, 5460, "", 7000),
        ]);
        let map = SlotMap::parse(reply, "10.0.0.1").expect("map");
        assert_eq!(map.primaries(), ["10.0.0.2:7001", "10.0.0.1:7000", "10.0.0.3:7002"]);
        assert_eq!(map.primary_of(0), Some("10.0.0.1:7000"));
        assert_eq!(map.primary_of(100), Some("10.0.0.3:7002"));
        assert_eq!(map.primary_of(101), Some("10.0.0.1:7000"));
        assert_eq!(map.primary_of(5460), Some("10.0.0.1:7000"));
        assert_eq!(map.primary_of(5461), Some("10.0.0.2:7001"));
        assert_eq!(map.primary_of(16383), Some("10.0.0.3:7002"));
        assert!(SlotMap::parse(Reply::Array(vec![entry(10, 5, "h", 1)]), "x").is_err());
        assert!(SlotMap::parse(Reply::Array(vec![entry(0, 16384, "h", 1)]), "x").is_err());
        assert!(SlotMap::parse(Reply::Int(3), "x").is_err());
        let partial = SlotMap::parse(Reply::Array(vec![entry(0, 99, "h", 1)]), "x").expect("map");
        assert_eq!(partial.primary_of(100), None, "an unserved slot has no primary");
    }

    #[test]
    fn only_replies_that_prove_the_request_did_not_run_redirect_it() {
        let request = Request::plain("INCR", vec!["k".into()], Vec::new());
        let error = |code: &str, message: &str| Reply::Error { code: code.into(), message: message.into() };
        assert_eq!(
            redirection(&request, &error("MOVED", "3999 127.0.0.1:6381")),
            Redirection::Moved("127.0.0.1:6381".into())
        );
        assert_eq!(
            redirection(&request, &error("ASK", "3999 127.0.0.1:6382")),
            Redirection::Ask("127.0.0.1:6382".into())
        );
        assert_eq!(
            redirection(&request, &error("TRYAGAIN", "Multiple keys request during rehashing of slot")),
            Redirection::TryLater
        );
        assert_eq!(
            redirection(&request, &error("CLUSTERDOWN", "The cluster is down")),
            Redirection::TryLater
        );
        assert_eq!(
            redirection(&request, &error("READONLY", "You can't write against a read only replica.")),
            Redirection::Refresh
        );
        assert_eq!(redirection(&request, &error("ERR", "something")), Redirection::Answered);
        assert_eq!(
            redirection(&request, &error("MOVED", "")),
            Redirection::Answered,
            "no address: not followed"
        );
        assert_eq!(redirection(&request, &Reply::Int(1)), Redirection::Answered);
    }

    #[test]
    fn carrying_follows_redirections_a_few_times_then_gives_up() {
        let request = Request::plain("INCR", vec!["k".into()], Vec::new());
        let error = |code: &str, message: &str| Reply::Error { code: code.into(), message: message.into() };
        let (ms, timeout) = (Duration::from_millis, Duration::from_secs(1));
        let mut carrying = Carrying::new();
        assert_eq!(carrying.redirected(), None);
        assert_eq!(
            carrying.on_reply(&request, &error("ASK", "1 h:2"), ms(0), timeout),
            Carry::SendAgain { read_map: false }
        );
        assert_eq!(carrying.redirected(), Some(("h:2".into(), true)));
        assert_eq!(
            carrying.on_reply(&request, &error("MOVED", "1 h:3"), ms(1), timeout),
            Carry::SendAgain { read_map: true }
        );
        assert_eq!(carrying.redirected(), Some(("h:3".into(), false)));
        assert_eq!(
            carrying.on_reply(&request, &error("TRYAGAIN", ""), ms(2), timeout),
            Carry::PauseThenSendAgain(ms(10))
        );
        assert_eq!(
            carrying.on_reply(&request, &error("TRYAGAIN", ""), ms(20), timeout),
            Carry::PauseThenSendAgain(ms(20))
        );
        assert_eq!(carrying.on_reply(&request, &Reply::Int(7), ms(50), timeout), Carry::Answered);
        // Never more than MAX_REDIRECTIONS, nor past the timeout.
        let mut endless = Carrying::new();
        let outcomes: Vec<Carry> = (0..=MAX_REDIRECTIONS)
            .map(|_| endless.on_reply(&request, &error("MOVED", "1 h:3"), ms(0), timeout))
            .collect();
        assert!(matches!(outcomes.last(), Some(Carry::GiveUp(err)) if err.code() == "backend_unavailable"));
        let mut late = Carrying::new();
        assert!(matches!(
            late.on_reply(&request, &error("CLUSTERDOWN", ""), ms(995), timeout),
            Carry::GiveUp(_)
        ));
    }
}
