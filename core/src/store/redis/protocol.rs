//! The Redis store's protocol as data: for every [`Store`](crate::Store) operation, the requests
//! to send and the decoding of their replies. No I/O and no client crate, so every host carries
//! it with the client it already has: the blocking [`RedisStore`](super::RedisStore), an async
//! connection, a JavaScript host's own client.
//!
//! An operation is a [`Step`]: either a [`Request`] to send with what to do with its [`Reply`],
//! or its result. Most operations are one request (one command or one script, so one atomic
//! step on the server); `sweep`, `stats` and `inspect` walk the namespace with `SCAN` and take
//! several. A host drives a step until it is done:
//!
//! ```
//! use racefree::store::redis::protocol::{Layout, Reply, Step};
//!
//! let layout = Layout::new("billing");
//! let mut step = layout.counter_next("task:1");
//! let result = loop {
//!     match step {
//!         Step::Send(request, then) => {
//!             assert_eq!((request.command.name(), request.keys.len()), ("INCR", 1));
//!             step = then(Reply::Int(1)); // what the server answered
//!         }
//!         Step::Done(result) => break result,
//!     }
//! };
//! assert_eq!(result, Ok(0));
//! # Ok::<(), racefree::Error>(())
//! ```
//!
//! **Keys** (one hash tag per primitive instance, so every request touches one slot and a cluster
//! client can route it by [`Request::keys`]):
//!
//! ```text
//! rf:{<len ns>:<namespace><len name>:<name>}<kind>[:<item>]
//! ```
//!
//! The lengths make the layout unambiguous whatever characters names hold. Kinds: `c` counter
//! (the next index, an integer), `i` its claims (hash id → index), `t` a lock's last token
//! (never deleted, so tokens grow across keys, expiry and restarts; a new one is also never below
//! the server's clock in microseconds, so they grow across a failover too), `l:<key>` a lease (hash
//! `t` token, `d` deadline, `r` the request granted it; `PX` set to the TTL), `m:<stream>` a
//! stream's marks (hash `n` marked, `e` expiry, `r` the request of the last mark; `PX` set to the
//! retention), `r:<key>` a record (hash `v` JSON, `ver`, `f` fence, `q` the request that wrote `ver`;
//! a deleted record that accepted a fencing token keeps only `f`, its tombstone), `f` the largest
//! version the record space has deleted (new records start above it), `w` the marker a write
//! with replication sets before its `WAIT` (`PX` 60 s; see [`Wait::requests`]).
//!
//! **Time**: a request's `now` argument is empty when the server's clock judges (`TIME` inside
//! the script), and the injected clock's reading otherwise ([`Now`]).
//!
//! **Replays.** A request whose reply was lost may have run, and some clients send it again by
//! themselves (ioredis resends unanswered commands after a reconnect; a cluster client retries).
//! Every request may be sent twice without applying twice, and answers alike the second time:
//! - reads, `claim` (the same id, the same index), `set`, `reset` and `forget` by their nature;
//! - a grant, a mark and a record write by their request id ([`Layout::lease_try_grant`],
//!   [`Layout::guard_mark`], [`Layout::record_put`]): kept with the lease, with the stream's last
//!   mark and with the record's version, it turns the same request sent again into the same
//!   answer — the same lease and token, [`MarkOutcome::First`], the version it wrote — instead of
//!   "held", `Duplicate` and a conflict with itself (an update would otherwise apply its change
//!   twice), as long as no other grant, mark or write came in between;
//! - `renew`, `release` and record deletes apply at most once, but a repeat of one that applied
//!   is answered as a new request would be (`renew` extends again; `release` answers
//!   `not_owner`, a delete "no record" or `conflict`): a host that resends them must read that
//!   answer so.
//!
//! `next` is the one request that applies twice when sent twice (a second `INCR`); `claim` is its
//! replay-safe form.
//!
//! **Replies** that do not fit what the operation can answer (a negative index, a number past
//! its range, an array of the wrong length, text where a number belongs) are
//! [`Error::CorruptData`], never a guess; an error reply is decoded by [`Reply::into_result`].

use std::sync::OnceLock;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::{
    counter_overflow, counter_value_i64, current_version, decoded, Claim, CounterEntry, Inventory,
    LeaseEntry, LeaseGrant, MarkOutcome, RecordEntry, StreamEntry, Versioned,
};

/// Lua integers are doubles: a claim refuses to go past the largest one that is exact.
pub const LUA_MAX_EXACT: u64 = (1 << 53) - 1;

/// How many keys one `SCAN` call asks for.
const SCAN_COUNT: &str = "1000";

/// A reply as any client reports it (RESP2 and RESP3 folded into one shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Nil (a missing key or field).
    Nil,
    /// An integer.
    Int(i64),
    /// A bulk string.
    Data(Vec<u8>),
    /// A simple string (`OK`).
    Status(String),
    /// An array.
    Array(Vec<Reply>),
    /// An error reply: its code (the first word: `ERR`, `NOSCRIPT`, `WRONGTYPE`, `MOVED`, …) and
    /// the rest of its message.
    Error {
        /// The error's code.
        code: String,
        /// The rest of the message.
        message: String,
    },
}

impl Reply {
    /// The reply itself, or its error: `WRONGTYPE` (a key of another type: written by
    /// something else) is `corrupt_data`; any other error reply is `backend_unavailable`.
    ///
    /// # Errors
    /// As above, for an error reply.
    pub fn into_result(self) -> Result<Reply> {
        match self {
            Reply::Error { code, message } if code == "WRONGTYPE" => Err(Error::corrupt(format!(
                "redis: a key holds what racefree did not write: {code} {message}"
            ))),
            Reply::Error { code, message } => Err(Error::unavailable(format!("redis: {code} {message}"))),
            reply => Ok(reply),
        }
    }

    fn int(self, what: &str) -> Result<i64> {
        match self.into_result()? {
            Reply::Int(n) => Ok(n),
            // Some clients hand a script's integer back as text.
            Reply::Data(text) => parse_i64(what, &text),
            other => Err(shape(what, &other)),
        }
    }

    fn unsigned<T: TryFrom<i64>>(self, what: &str) -> Result<T> {
        let n = self.int(what)?;
        decoded("redis", what, n)
    }

    /// An integer stored as text, or `None` for nil.
    fn opt_stored<T: TryFrom<i64>>(self, what: &str) -> Result<Option<T>> {
        match self.into_result()? {
            Reply::Nil => Ok(None),
            Reply::Data(text) => decoded("redis", what, parse_i64(what, &text)?).map(Some),
            Reply::Int(n) => decoded("redis", what, n).map(Some),
            other => Err(shape(what, &other)),
        }
    }

    fn opt_text(self, what: &str) -> Result<Option<String>> {
        match self.into_result()? {
            Reply::Nil => Ok(None),
            Reply::Data(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| Error::corrupt(format!("redis: {what} is not UTF-8"))),
            other => Err(shape(what, &other)),
        }
    }

    fn array<const N: usize>(self, what: &str) -> Result<[Reply; N]> {
        match self.into_result()? {
            Reply::Array(items) => {
                let found = items.len();
                <[Reply; N]>::try_from(items)
                    .map_err(|_| Error::corrupt(format!("redis: {what}: {found} items where {N} belong")))
            }
            other => Err(shape(what, &other)),
        }
    }

    fn items(self, what: &str) -> Result<Vec<Reply>> {
        match self.into_result()? {
            Reply::Array(items) => Ok(items),
            other => Err(shape(what, &other)),
        }
    }
}

fn parse_i64(what: &str, text: &[u8]) -> Result<i64> {
    std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).ok_or_else(|| {
        Error::corrupt(format!("redis: {what} {:?} is not an integer", String::from_utf8_lossy(text)))
    })
}

fn shape(what: &str, reply: &Reply) -> Error {
    Error::corrupt(format!("redis: {what}: unexpected reply {reply:?}"))
}

/// A Lua script of the store: its text and the SHA-1 that `EVALSHA` names it by.
#[derive(Debug)]
pub struct Script {
    /// A short name, for logs and metrics.
    pub name: &'static str,
    /// The script's source (what `SCRIPT LOAD` or `EVAL` sends when the server lacks it).
    pub text: String,
    /// Its SHA-1, lowercase hex.
    pub sha1: String,
}

impl Script {
    fn new(name: &'static str, text: String) -> Self {
        let sha1 = sha1_smol::Sha1::from(&text).digest().to_string();
        Self { name, text, sha1 }
    }
}

/// What a request runs.
#[derive(Debug, Clone, Copy)]
pub enum Command {
    /// `EVALSHA <sha1> <keys> <args>`; when the server answers `NOSCRIPT` (after a restart or a
    /// failover its script cache is empty), the host loads the script and sends it again.
    Script(&'static Script),
    /// A plain command: the name, then the keys, then the arguments.
    Plain(&'static str),
}

impl Command {
    /// The script's name or the command's, for logs and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Command::Script(script) => script.name,
            Command::Plain(name) => name,
        }
    }
}

/// One request: a command or script, its keys (all of one hash slot), its arguments.
#[derive(Debug, Clone)]
pub struct Request {
    /// What runs.
    pub command: Command,
    /// The keys it touches, in order.
    pub keys: Vec<String>,
    /// The arguments after the keys.
    pub args: Vec<String>,
    /// A write of a layout [with replication](Layout::with_replication): the host sends
    /// [`Wait::requests`] right after it, **on the same connection** (one pipeline of the three),
    /// and hands back the array of the three replies. `WAIT` blocks the connection it is sent on
    /// until it answers: a host carries these on a connection no other caller shares meanwhile,
    /// never on a multiplexed one. After a `NOSCRIPT` in the first reply, the host loads the
    /// script and sends the three again.
    pub wait: Option<Wait>,
}

/// What a write with replication waits for, and the requests that follow it (see
/// [`Request::wait`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// How many replicas must acknowledge it, within how long.
    pub replication: Replication,
    /// The key of the marker write sent between the write and its `WAIT` (kind `w` of the
    /// write's primitive instance: the write's slot).
    pub marker_key: String,
}

/// How long a marker write's key lives (every write that waits sets it again).
const MARKER_TTL_MS: &str = "60000";

impl Wait {
    /// The replies a write with its [`requests`](Wait::requests) gets: the write's, the
    /// marker's and `WAIT`'s.
    pub const REPLIES: usize = 3;

    /// The requests sent right after the write, in order: the marker write, then `WAIT`.
    ///
    /// `WAIT` counts the replicas that acknowledged the connection's last write that reached the
    /// replication stream. A write that changed nothing — a claim that found its id, a mark
    /// answered `Duplicate`, a grant that found the key held — reaches no stream, and its answer
    /// may rest on a write another request made that no replica has yet (one that timed out
    /// waiting for them): without the marker, `WAIT` would count acknowledgements of an older
    /// write and pass that answer on as replicated, to be lost with the primary. The marker
    /// always reaches the stream, so `WAIT` covers everything the primary applied before it.
    /// (Redis 7.0.15, measured here, already waits for everything after a command that changed
    /// nothing; the marker makes it hold whatever the server counts from, as `WAIT` documents.)
    #[must_use]
    pub fn requests(&self) -> [Request; Wait::REPLIES - 1] {
        let marker = Request::plain(
            "SET",
            vec![self.marker_key.clone()],
            vec!["1".to_owned(), "PX".to_owned(), MARKER_TTL_MS.to_owned()],
        );
        let replication = self.replication;
        let wait = Request::plain(
            "WAIT",
            Vec::new(),
            vec![replication.replicas.to_string(), replication.timeout_ms.to_string()],
        );
        [marker, wait]
    }
}

impl Request {
    fn script(script: &'static Script, keys: Vec<String>, args: Vec<String>) -> Self {
        Self { command: Command::Script(script), keys, args, wait: None }
    }

    pub(crate) fn plain(name: &'static str, keys: Vec<String>, args: Vec<String>) -> Self {
        Self { command: Command::Plain(name), keys, args, wait: None }
    }

    /// `SCRIPT LOAD` of the script a `NOSCRIPT` reply said the server lacks.
    #[must_use]
    pub fn script_load(script: &Script) -> Self {
        Self::plain("SCRIPT", Vec::new(), vec!["LOAD".to_owned(), script.text.clone()])
    }

    /// The request's own reply within `reply`: the first of the replies a request with a
    /// [`wait`](Request::wait) is answered with, the reply itself otherwise.
    #[must_use]
    pub fn own_reply<'r>(&self, reply: &'r Reply) -> Option<&'r Reply> {
        match (&self.wait, reply) {
            (Some(_), Reply::Array(replies)) => replies.first(),
            _ => Some(reply),
        }
    }

    /// The script to load and send this request again with, when `reply` (to this request, or
    /// to this request with what follows it) says the server lacks it (`NOSCRIPT`).
    #[must_use]
    pub fn missing_script(&self, reply: &Reply) -> Option<&'static Script> {
        let Command::Script(script) = self.command else { return None };
        let own = self.own_reply(reply)?;
        matches!(own, Reply::Error { code, .. } if code == "NOSCRIPT").then_some(script)
    }
}

/// How many replicas must acknowledge each write before it counts (`WAIT`), and how long to wait
/// for them. A write fewer replicas acknowledged is applied on the primary but would be lost
/// with it in a failover: the operation fails with [`Error::Timeout`] (its outcome is as unknown
/// as after any timeout), except a grant, which is released first and fails with
/// [`Error::BackendUnavailable`] (nothing is held), and a grant that found the key held
/// (nothing was written: that answer stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Replicas that must acknowledge (at least 1).
    pub replicas: u32,
    /// How long `WAIT` waits for them (at least 1 ms: `WAIT`'s 0 would wait forever).
    pub timeout_ms: u64,
}

impl Replication {
    /// How long `WAIT` waits when no timeout is given, on every store: 1 s.
    pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
}

/// What to do with a reply: the next step.
pub type Then<T> = Box<dyn FnOnce(Reply) -> Step<T> + Send>;

/// An operation under way: a request to send and what to do with its reply, or its result.
pub enum Step<T> {
    /// Send the request, then call the function with its reply.
    Send(Request, Then<T>),
    /// The operation's result.
    Done(Result<T>),
}

impl<T> std::fmt::Debug for Step<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Send(request, _) => f.debug_tuple("Send").field(request).finish_non_exhaustive(),
            Step::Done(result) => f.debug_tuple("Done").field(&result.as_ref().map(|_| "…")).finish(),
        }
    }
}

fn send<T>(request: Request, then: impl FnOnce(Reply) -> Step<T> + Send + 'static) -> Step<T> {
    Step::Send(request, Box::new(then))
}

/// One request whose reply decodes straight to the result.
fn one<T>(request: Request, decode: impl FnOnce(Reply) -> Result<T> + Send + 'static) -> Step<T> {
    send(request, move |reply| Step::Done(decode(reply)))
}

/// The clock a request is judged by, and the reading that turns "time left" into a deadline.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// The injected clock's reading (milliseconds): every deadline this store reports is on it.
    pub local_ms: u64,
    /// Whether scripts judge by `local_ms` (any clock but the wall clock) rather than the
    /// server's `TIME`.
    pub judge_by_local: bool,
}

impl Now {
    /// The scripts' `now` argument: the local reading, or empty for the server's clock.
    fn arg(self) -> String {
        if self.judge_by_local {
            self.local_ms.to_string()
        } else {
            String::new()
        }
    }
}

/// The time source of every timed script: the injected clock's reading, or the server's `TIME`.
const NOW: &str = "
local clock_us
-- The server's clock in microseconds, read once per script.
local function server_us()
  if not clock_us then
    local t = redis.call('TIME')
    clock_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return clock_us
end
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  return math.floor(server_us() / 1000)
end
local function int(n) return string.format('%d', n) end
-- Redis removes the key by itself when it judges time; under an injected clock, sweep does.
local function expire(key, ms) if ARGV[1] == '' then redis.call('PEXPIRE', key, ms) end end
";

// KEYS[1] claims, KEYS[2] counter; ARGV[1] id, ARGV[2] largest exact index. -> {index, is_new} or {-1, 0}.
const CLAIM: &str = "
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then return {tonumber(found), 0} end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return {-1, 0} end
local index = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', index))
return {index, 1}
";

// KEYS[1] marks; ARGV[1] now, ARGV[2] position, ARGV[3] retention, ARGV[4] request id or ''.
// -> {0 first | 1 duplicate | 2 out of order, marked}. The request that made the last mark is
// kept: sent again, it is answered `first` again (a replay, not a duplicate).
const MARK: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 'n', 'e', 'r')
local marked = 0
if v[1] and tonumber(v[2]) > now then marked = tonumber(v[1]) end
local position = tonumber(ARGV[2])
if position < marked then
  if position == marked - 1 and ARGV[4] ~= '' and v[3] == ARGV[4] then return {0, marked} end
  return {1, marked}
end
if position > marked then return {2, marked} end
redis.call('HSET', KEYS[1], 'n', int(marked + 1), 'e', int(now + tonumber(ARGV[3])), 'r', ARGV[4])
expire(KEYS[1], ARGV[3])
return {0, marked + 1}
";

// KEYS[1] marks; ARGV[1] now. -> events marked, 0 when none or expired.
const MARKED: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
if v[1] and tonumber(v[2]) > now then return tonumber(v[1]) end
return 0
";

// KEYS[1] marks; ARGV[1] now. -> 1 when unexpired marks were forgotten.
const FORGET: &str = "
local now = now_ms()
local expires = redis.call('HGET', KEYS[1], 'e')
redis.call('DEL', KEYS[1])
if expires and tonumber(expires) > now then return 1 end
return 0
";

// KEYS[1] lease, KEYS[2] the lock's last token; ARGV[1] now, ARGV[2] ttl, ARGV[3] request id or ''.
// -> {1 granted, token, ms left} | {0 held} | {2 the lock has issued its largest token}. The
// lease keeps the request that was granted it: sent again while the lease lasts, that request is
// answered with the same lease (a replay, not a rival).
//
// A token is one above the lock's last and never below the server's clock in microseconds
// (`TIME`, whatever clock judges the lease): a replica promoted after losing the last grants has
// a smaller last token, but a later clock, so it still issues larger ones. (Lua numbers are
// doubles: the script refuses to pass 2^53 - 1 rather than round; the clock reaches it in 2255.)
const GRANT: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 'd', 't', 'r')
if v[1] and tonumber(v[1]) > now then
  if ARGV[3] ~= '' and v[3] == ARGV[3] then return {1, tonumber(v[2]), tonumber(v[1]) - now} end
  return {0, 0, 0}
end
local token = math.max(tonumber(redis.call('GET', KEYS[2]) or '0') + 1, server_us())
if token > 9007199254740991 then return {2, 0, 0} end
redis.call('SET', KEYS[2], int(token))
redis.call('HSET', KEYS[1], 't', int(token), 'd', int(now + tonumber(ARGV[2])), 'r', ARGV[3])
expire(KEYS[1], ARGV[2])
return {1, token, tonumber(ARGV[2])}
";

// KEYS[1] lease; ARGV[1] now, ARGV[2] token, ARGV[3] ttl. -> 1 renewed, 0 not the holder.
const RENEW: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 't', 'd')
if v[1] ~= ARGV[2] or tonumber(v[2]) <= now then return 0 end
redis.call('HSET', KEYS[1], 'd', int(now + tonumber(ARGV[3])))
expire(KEYS[1], ARGV[3])
return 1
";

// KEYS[1] lease; ARGV[1] now, ARGV[2] token. -> 1 released, 0 not the holder.
const RELEASE: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 't', 'd')
if v[1] ~= ARGV[2] or tonumber(v[2]) <= now then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

// KEYS[1] lease; ARGV[1] now. -> {held, token, ms left}.
const HOLDER: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 't', 'd')
if v[1] and tonumber(v[2]) > now then return {1, tonumber(v[1]), tonumber(v[2]) - now} end
return {0, 0, 0}
";

// KEYS[1] record, KEYS[2] the space's deleted-version floor; ARGV[1] JSON, ARGV[2] expected
// version or '', ARGV[3] fencing token or '', ARGV[4] the request.
// -> {0 written, new version} | {1 conflict, version or -1} | {2 stale token, latest}.
// The same rules as `decide_record_write`; they must live in the script to be one atomic step.
// The request that wrote the record's version is kept (`q`): the same request sent again is
// answered with the version it wrote, not a conflict with itself.
const PUT: &str = "
local cur = redis.call('HMGET', KEYS[1], 'v', 'ver', 'f', 'q')
if cur[1] and cur[4] == ARGV[4] then return {0, tonumber(cur[2])} end
local expected, token = ARGV[2], ARGV[3]
local fence = tonumber(cur[3] or '0')
if token ~= '' and tonumber(token) < fence then return {2, fence} end
local new_fence = cur[3] or '0'
if token ~= '' and tonumber(token) > fence then new_fence = token end
local version
if cur[1] then
  version = tonumber(cur[2])
  if expected == '' or tonumber(expected) ~= version then return {1, version} end
else
  if expected ~= '' then return {1, -1} end
  version = tonumber(redis.call('GET', KEYS[2]) or '0')
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', string.format('%d', version + 1), 'f', new_fence, 'q', ARGV[4])
return {0, version + 1}
";

// KEYS[1] record, KEYS[2] the space's deleted-version floor; ARGV[1] expected version or ''.
// -> {0, deleted} | {1 conflict, version or -1}. A record with a fence leaves its tombstone.
const DELETE: &str = "
local cur = redis.call('HMGET', KEYS[1], 'v', 'ver', 'f')
local version = cur[1] and cur[2]
if ARGV[1] ~= '' and version ~= ARGV[1] then
  if version then return {1, tonumber(version)} end
  return {1, -1}
end
if not version then return {0, 0} end
if tonumber(version) > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], version) end
if tonumber(cur[3] or '0') > 0 then redis.call('HDEL', KEYS[1], 'v', 'ver', 'q') else redis.call('DEL', KEYS[1]) end
return {0, 1}
";

// KEYS[1] lease or marks; ARGV[1] now, ARGV[2] the deadline field. -> 1 when it was expired and removed.
const SWEEP_ONE: &str = "
local now = now_ms()
local deadline = redis.call('HGET', KEYS[1], ARGV[2])
if deadline and tonumber(deadline) <= now then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// The store's scripts, hashed once per process.
#[derive(Debug)]
pub struct Scripts {
    /// Assigns an execution id's index.
    pub claim: Script,
    /// Marks an event.
    pub mark: Script,
    /// Counts a stream's marked events.
    pub marked: Script,
    /// Forgets a stream's marks.
    pub forget: Script,
    /// Grants a lease.
    pub grant: Script,
    /// Renews a lease.
    pub renew: Script,
    /// Releases a lease.
    pub release: Script,
    /// Reads a lease.
    pub holder: Script,
    /// Writes a record.
    pub put: Script,
    /// Deletes a record.
    pub delete: Script,
    /// Removes one lease or stream if it has expired.
    pub sweep_one: Script,
}

/// Every script of the store (texts and hashes computed on first use).
pub fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| {
        let timed = |name, body: &str| Script::new(name, format!("{NOW}{body}"));
        Scripts {
            claim: Script::new("claim", CLAIM.to_owned()),
            mark: timed("mark", MARK),
            marked: timed("marked", MARKED),
            forget: timed("forget", FORGET),
            grant: timed("grant", GRANT),
            renew: timed("renew", RENEW),
            release: timed("release", RELEASE),
            holder: timed("holder", HOLDER),
            put: Script::new("put", PUT.to_owned()),
            delete: Script::new("delete", DELETE.to_owned()),
            sweep_one: timed("sweep_one", SWEEP_ONE),
        }
    })
}

/// `Some(n)` as its decimal text, `None` as "" (what the scripts read as "none").
fn opt_arg(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A grant's or holder's `{1, token, ms left}` (or `{0, …}` for none; a grant's `{2, …}` when
/// `granting`, the lock, has no token left to issue), as a lease whose deadline
/// is on the local clock: the reading taken before the request plus the time left, so never
/// later than the server's.
fn lease(reply: Reply, what: &str, granting: Option<&str>, now: Now) -> Result<Option<LeaseGrant>> {
    let [found, token, left] = reply.array(what)?;
    match (found.int(what)?, granting) {
        (1, _) => {}
        (2, Some(lock)) => {
            return Err(Error::invalid_argument(format!(
                "lock {lock:?} has issued its largest fencing token"
            )))
        }
        _ => return Ok(None),
    }
    let left: u64 = left.unsigned("lease time left")?;
    Ok(Some(LeaseGrant { token: token.unsigned("token")?, deadline_ms: now.local_ms.saturating_add(left) }))
}

/// A conflict's "current version" reply: -1 for no record.
fn version_or_none(reply: Reply) -> Result<Option<u64>> {
    current_version("redis", reply.int("record version")?)
}

/// What becomes of a write's result that fewer replicas acknowledged than asked for.
enum Unreplicated {
    /// Nothing was written: the result is the answer.
    Stands,
    /// Applied on the primary, maybe lost in a failover: [`Error::Timeout`].
    Fails,
    /// Undone on the primary by this request first: [`Error::BackendUnavailable`].
    UndoneBy(Request),
}

/// The keys of one namespace, and every operation planned on them.
#[derive(Debug, Clone)]
pub struct Layout {
    /// `rf:{<len ns>:<ns>`: the start of every key of this namespace.
    prefix: String,
    /// What every write waits for, if anything.
    replication: Option<Replication>,
}

impl Layout {
    /// The layout of `namespace` ("" for none).
    #[must_use]
    pub fn new(namespace: &str) -> Self {
        Self { prefix: format!("rf:{{{}:{namespace}", namespace.len()), replication: None }
    }

    /// This layout with every write waiting for `replication` (see [`Request::wait`]): counter
    /// `next`, `claim`, `set` and `reset`, marks and `forget`, grants, renewals and releases,
    /// record writes and deletes. (Reads wait for nothing; `sweep` removes only what expired.)
    #[must_use]
    pub fn with_replication(mut self, replication: Option<Replication>) -> Self {
        self.replication = replication;
        self
    }

    /// A write: `request`, then `then` with its reply; with replication, sent with its `WAIT`,
    /// and a result the replicas did not acknowledge turned into an error.
    fn write<T: Send + 'static>(
        &self,
        request: Request,
        then: impl FnOnce(Reply) -> Step<T> + Send + 'static,
    ) -> Step<T> {
        self.write_undoing(request, then, |_| Unreplicated::Fails)
    }

    /// A write whose reply decodes straight to the result.
    fn write_one<T: Send + 'static>(
        &self,
        request: Request,
        decode: impl FnOnce(Reply) -> Result<T> + Send + 'static,
    ) -> Step<T> {
        self.write(request, move |reply| Step::Done(decode(reply)))
    }

    /// [`write`](Self::write), where `unreplicated` says what becomes of a result the replicas
    /// did not acknowledge.
    fn write_undoing<T: Send + 'static>(
        &self,
        mut request: Request,
        then: impl FnOnce(Reply) -> Step<T> + Send + 'static,
        unreplicated: impl FnOnce(&T) -> Unreplicated + Send + 'static,
    ) -> Step<T> {
        let Some(replication) = self.replication else {
            return send(request, then);
        };
        // Every write names its primitive instance's keys: the marker goes in the same slot.
        let Some((name, _, _)) = request.keys.first().and_then(|key| self.parse(key)) else {
            return Step::Done(Err(Error::unavailable(format!(
                "redis: {} names no key of this namespace to wait for",
                request.command.name()
            ))));
        };
        request.wait = Some(Wait { replication, marker_key: self.key(name, 'w', None) });
        let what = request.command.name();
        send(request, move |replies| {
            let (reply, acked) =
                match replies.array("write, marker and WAIT").and_then(|[reply, marked, acked]| {
                    // A marker refused leaves `WAIT`'s count about an older write: none counts.
                    let acked: u64 = if marked.into_result().is_ok() { acked.unsigned("WAIT")? } else { 0 };
                    Ok((reply, acked))
                }) {
                    Ok(pair) => pair,
                    Err(err) => return Step::Done(Err(err)),
                };
            match then(reply) {
                Step::Done(Ok(value)) if acked < u64::from(replication.replicas) => {
                    let applied =
                        Error::Timeout { waited: std::time::Duration::from_millis(replication.timeout_ms) };
                    match unreplicated(&value) {
                        Unreplicated::Stands => Step::Done(Ok(value)),
                        Unreplicated::Fails => Step::Done(Err(applied)),
                        Unreplicated::UndoneBy(undo) => one(undo, move |reply| {
                            reply.into_result()?;
                            Err(Error::unavailable(format!(
                                "redis: {what}: {acked} of {} replicas acknowledged it within {} ms; \
                                 undone on the primary",
                                replication.replicas, replication.timeout_ms
                            )))
                        }),
                    }
                }
                other => other,
            }
        })
    }

    /// The key of primitive instance `name`, of `kind`, for `item`.
    #[must_use]
    pub fn key(&self, name: &str, kind: char, item: Option<&str>) -> String {
        match item {
            Some(item) => format!("{}{}:{name}}}{kind}:{item}", self.prefix, name.len()),
            None => format!("{}{}:{name}}}{kind}", self.prefix, name.len()),
        }
    }

    /// Splits a key of this namespace into `(name, kind, item)`; `None` for any other key.
    #[must_use]
    pub fn parse<'k>(&self, key: &'k str) -> Option<(&'k str, char, Option<&'k str>)> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        let (len, rest) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let name = rest.get(..len)?;
        let rest = rest.get(len..)?.strip_prefix('}')?;
        let mut chars = rest.chars();
        let kind = chars.next()?;
        let item = chars.as_str().strip_prefix(':');
        Some((name, kind, item))
    }

    /// The `SCAN MATCH` pattern of every key of this namespace.
    #[must_use]
    pub fn scan_pattern(&self) -> String {
        let mut escaped = String::with_capacity(self.prefix.len() + 1);
        for c in self.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped.push('*');
        escaped
    }

    /// `Store::counter_next`: one `INCR`. Its refusal (the server says `ERR` both for a counter
    /// at `i64::MAX` and for a key that holds no integer) is told apart by a `GET`.
    #[must_use]
    pub fn counter_next(&self, counter: &str) -> Step<u64> {
        let key = self.key(counter, 'c', None);
        let (counter, again) = (counter.to_owned(), key.clone());
        self.write(Request::plain("INCR", vec![key], vec![]), move |reply| match reply {
            Reply::Error { code, message } if code == "ERR" => {
                let refusal = format!("{code} {message}");
                one(Request::plain("GET", vec![again], vec![]), move |held| {
                    match held.opt_text("counter")? {
                        Some(held) if held == i64::MAX.to_string() => Err(counter_overflow(&counter)),
                        held => Err(Error::corrupt(format!(
                            "redis: counter {counter:?} holds {held:?}, not an index ({refusal})"
                        ))),
                    }
                })
            }
            reply => Step::Done(
                reply.int("counter index").and_then(|next| decoded("redis", "counter index", next - 1)),
            ),
        })
    }

    /// `Store::counter_claim`: one script.
    #[must_use]
    pub fn counter_claim(&self, counter: &str, id: &str) -> Step<Claim> {
        let keys = vec![self.key(counter, 'i', None), self.key(counter, 'c', None)];
        let counter = counter.to_owned();
        self.write_one(
            Request::script(&scripts().claim, keys, vec![id.to_owned(), LUA_MAX_EXACT.to_string()]),
            move |reply| {
                let [index, is_new] = reply.array("claim")?;
                match index.int("claimed index")? {
                    -1 => Err(Error::invalid_argument(format!(
                        "counter {counter:?} is past 2^53 - 1, the largest index a Redis claim can issue"
                    ))),
                    index => Ok(Claim {
                        index: decoded("redis", "claimed index", index)?,
                        is_new: is_new.int("claim")? == 1,
                    }),
                }
            },
        )
    }

    /// `Store::counter_index_of`: one `HGET`.
    #[must_use]
    pub fn counter_index_of(&self, counter: &str, id: &str) -> Step<Option<u64>> {
        let request = Request::plain("HGET", vec![self.key(counter, 'i', None)], vec![id.to_owned()]);
        one(request, |reply| reply.opt_stored("claimed index"))
    }

    /// `Store::counter_peek`: one `GET`.
    #[must_use]
    pub fn counter_peek(&self, counter: &str) -> Step<u64> {
        let request = Request::plain("GET", vec![self.key(counter, 'c', None)], vec![]);
        one(request, |reply| Ok(reply.opt_stored("counter index")?.unwrap_or(0)))
    }

    /// `Store::counter_set`: one `SET`; a value past `i64::MAX` is refused before anything is sent.
    #[must_use]
    pub fn counter_set(&self, counter: &str, next: u64) -> Step<()> {
        match counter_value_i64("Redis", next) {
            Ok(next) => {
                let request =
                    Request::plain("SET", vec![self.key(counter, 'c', None)], vec![next.to_string()]);
                self.write_one(request, |reply| reply.into_result().map(drop))
            }
            Err(refused) => Step::Done(Err(refused)),
        }
    }

    /// `Store::counter_reset`: one `DEL` of the counter and its claims.
    #[must_use]
    pub fn counter_reset(&self, counter: &str) -> Step<()> {
        let keys = vec![self.key(counter, 'c', None), self.key(counter, 'i', None)];
        self.write_one(Request::plain("DEL", keys, vec![]), |reply| reply.int("deleted count").map(drop))
    }

    /// `Store::guard_mark`: one script. **Replay-safe**: `request` (an id no other request shares:
    /// 128 bits from the operating system's randomness, never a generator a fork could copy; empty
    /// for none) is kept with the mark it made, and the same request sent again is answered [`MarkOutcome::First`] again, so a host
    /// may resend it after a lost reply.
    #[must_use]
    pub fn guard_mark(
        &self,
        guard: &str,
        stream: &str,
        position: u32,
        retention_ms: u64,
        now: Now,
        request: &str,
    ) -> Step<MarkOutcome> {
        let args = vec![now.arg(), position.to_string(), retention_ms.to_string(), request.to_owned()];
        self.write_one(
            Request::script(&scripts().mark, vec![self.key(guard, 'm', Some(stream))], args),
            |reply| {
                let [outcome, marked] = reply.array("mark")?;
                Ok(match outcome.int("mark outcome")? {
                    0 => MarkOutcome::First,
                    1 => MarkOutcome::Duplicate,
                    2 => MarkOutcome::OutOfOrder { marked: marked.unsigned("marked count")? },
                    other => return Err(Error::corrupt(format!("redis: mark outcome {other}"))),
                })
            },
        )
    }

    /// `Store::guard_marked`: one script.
    #[must_use]
    pub fn guard_marked(&self, guard: &str, stream: &str, now: Now) -> Step<u32> {
        let request =
            Request::script(&scripts().marked, vec![self.key(guard, 'm', Some(stream))], vec![now.arg()]);
        one(request, |reply| reply.unsigned("marked count"))
    }

    /// `Store::guard_forget`: one script.
    #[must_use]
    pub fn guard_forget(&self, guard: &str, stream: &str, now: Now) -> Step<bool> {
        let request =
            Request::script(&scripts().forget, vec![self.key(guard, 'm', Some(stream))], vec![now.arg()]);
        self.write_one(request, |reply| Ok(reply.int("forget")? == 1))
    }

    /// `Store::lease_try_grant`: one script. The deadline reported is `now.local_ms` (read before
    /// the request) plus the time left: never later than the server's. **Replay-safe**: `request`
    /// (an id no other request shares, as for [`guard_mark`](Layout::guard_mark); empty for none)
    /// is kept with the lease, and the same request sent again while the lease lasts is answered with
    /// that lease (same token, the time it has left), so a host may resend it after a lost reply.
    #[must_use]
    pub fn lease_try_grant(
        &self,
        lock: &str,
        key: &str,
        ttl_ms: u64,
        now: Now,
        request: &str,
    ) -> Step<Option<LeaseGrant>> {
        let keys = vec![self.key(lock, 'l', Some(key)), self.key(lock, 't', None)];
        let args = vec![now.arg(), ttl_ms.to_string(), request.to_owned()];
        let (lease_key, lock) = (keys[0].clone(), lock.to_owned());
        // A grant the replicas did not acknowledge is released before the error: a failover
        // would lose it, and another starter would be granted the key while this one runs.
        // (A key found held was not written: that answer stands.)
        let release = move |granted: &Option<LeaseGrant>| match granted {
            Some(grant) => Unreplicated::UndoneBy(Request::script(
                &scripts().release,
                vec![lease_key],
                vec![now.arg(), grant.token.to_string()],
            )),
            None => Unreplicated::Stands,
        };
        self.write_undoing(
            Request::script(&scripts().grant, keys, args),
            move |reply| Step::Done(lease(reply, "grant", Some(&lock), now)),
            release,
        )
    }

    /// `Store::lease_renew`: one script.
    #[must_use]
    pub fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64, now: Now) -> Step<u64> {
        let args = vec![now.arg(), token.to_string(), ttl_ms.to_string()];
        let key_name = key.to_owned();
        self.write_one(
            Request::script(&scripts().renew, vec![self.key(lock, 'l', Some(key))], args),
            move |reply| {
                if reply.int("renew")? == 1 {
                    Ok(now.local_ms.saturating_add(ttl_ms))
                } else {
                    Err(Error::NotOwner { key: key_name, token })
                }
            },
        )
    }

    /// `Store::lease_release`: one script.
    #[must_use]
    pub fn lease_release(&self, lock: &str, key: &str, token: u64, now: Now) -> Step<()> {
        let key_name = key.to_owned();
        let request = Request::script(
            &scripts().release,
            vec![self.key(lock, 'l', Some(key))],
            vec![now.arg(), token.to_string()],
        );
        self.write_one(request, move |reply| {
            if reply.int("release")? == 1 {
                Ok(())
            } else {
                Err(Error::NotOwner { key: key_name, token })
            }
        })
    }

    /// `Store::lease_holder`: one script.
    #[must_use]
    pub fn lease_holder(&self, lock: &str, key: &str, now: Now) -> Step<Option<LeaseGrant>> {
        let request =
            Request::script(&scripts().holder, vec![self.key(lock, 'l', Some(key))], vec![now.arg()]);
        one(request, move |reply| lease(reply, "holder", None, now))
    }

    /// `Store::record_get`: one `HMGET` (a tombstone has no value: no record).
    #[must_use]
    pub fn record_get(&self, space: &str, key: &str) -> Step<Option<Versioned>> {
        let request =
            Request::plain("HMGET", vec![self.key(space, 'r', Some(key))], vec!["v".into(), "ver".into()]);
        let key = key.to_owned();
        one(request, move |reply| {
            let [text, version] = reply.array("record")?;
            let (Some(text), Some(version)) =
                (text.opt_text("record")?, version.opt_stored("record version")?)
            else {
                return Ok(None);
            };
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| Error::corrupt(format!("redis: record {key:?} holds invalid JSON: {e}")))?;
            Ok(Some(Versioned { value, version }))
        })
    }

    /// `Store::record_put`: one script. **Replay-safe**: `request` (an id no other request
    /// shares) is kept with the version it wrote, and the same request sent again before another
    /// write of the record is answered with that version.
    #[must_use]
    pub fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
        request: &str,
    ) -> Step<u64> {
        let keys = vec![self.key(space, 'r', Some(key)), self.key(space, 'f', None)];
        let args =
            vec![value.to_string(), opt_arg(expected_version), opt_arg(fencing_token), request.to_owned()];
        let key = key.to_owned();
        self.write_one(Request::script(&scripts().put, keys, args), move |reply| {
            let [outcome, number] = reply.array("put")?;
            match outcome.int("put outcome")? {
                0 => number.unsigned("record version"),
                1 => Err(Error::Conflict { key, current_version: version_or_none(number)? }),
                2 => Err(Error::StaleToken {
                    key,
                    token: fencing_token.unwrap_or(0),
                    latest: number.unsigned("fence")?,
                }),
                other => Err(Error::corrupt(format!("redis: put outcome {other}"))),
            }
        })
    }

    /// `Store::record_delete`: one script.
    #[must_use]
    pub fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Step<bool> {
        let keys = vec![self.key(space, 'r', Some(key)), self.key(space, 'f', None)];
        let key = key.to_owned();
        self.write_one(
            Request::script(&scripts().delete, keys, vec![opt_arg(expected_version)]),
            move |reply| {
                let [outcome, number] = reply.array("delete")?;
                match outcome.int("delete outcome")? {
                    0 => Ok(number.int("deleted")? == 1),
                    1 => Err(Error::Conflict { key, current_version: version_or_none(number)? }),
                    other => Err(Error::corrupt(format!("redis: delete outcome {other}"))),
                }
            },
        )
    }

    /// Every key of the namespace, by `SCAN` (not a point-in-time snapshot), then `then(keys)`.
    fn scan<T: 'static>(&self, then: impl FnOnce(Vec<String>) -> Step<T> + Send + 'static) -> Step<T> {
        self.scan_from("0".into(), Vec::new(), then)
    }

    fn scan_from<T: 'static>(
        &self,
        cursor: String,
        mut found: Vec<String>,
        then: impl FnOnce(Vec<String>) -> Step<T> + Send + 'static,
    ) -> Step<T> {
        let args = vec![cursor, "MATCH".into(), self.scan_pattern(), "COUNT".into(), SCAN_COUNT.into()];
        let layout = self.clone();
        send(Request::plain("SCAN", vec![], args), move |reply| {
            let page = reply.array::<2>("scan").and_then(|[cursor, keys]| {
                let cursor = cursor.opt_text("scan cursor")?.unwrap_or_default();
                let keys: Result<Vec<String>> = keys
                    .items("scan keys")?
                    .into_iter()
                    .map(|k| Ok(k.opt_text("key")?.unwrap_or_default()))
                    .collect();
                Ok((cursor, keys?))
            });
            match page {
                Err(e) => Step::Done(Err(e)),
                Ok((cursor, keys)) => {
                    found.extend(keys);
                    if cursor == "0" {
                        then(found)
                    } else {
                        layout.scan_from(cursor, found, then)
                    }
                }
            }
        })
    }

    /// `Store::sweep`: `SCAN`, then one script per lease and stream key (each removes its key
    /// only if it has expired). Returns how many were removed.
    #[must_use]
    pub fn sweep(&self, now: Now) -> Step<u64> {
        let layout = self.clone();
        self.scan(move |keys| {
            let due: Vec<(String, &'static str)> = keys
                .into_iter()
                .filter_map(|key| {
                    let field = match layout.parse(&key) {
                        Some((_, 'l', Some(_))) => "d",
                        Some((_, 'm', Some(_))) => "e",
                        _ => return None,
                    };
                    Some((key, field))
                })
                .collect();
            each(due, 0u64, move |(key, field), removed| {
                let request = Request::script(&scripts().sweep_one, vec![key], vec![now.arg(), field.into()]);
                (request, Box::new(move |reply: Reply| Ok(removed + reply.unsigned::<u64>("swept count")?)))
            })
        })
    }

    /// `Store::stats`'s entries: `SCAN`, then `HLEN` of each claims hash. Counters, leases,
    /// streams and records (tombstones too) count one each.
    #[must_use]
    pub fn entries(&self) -> Step<u64> {
        let layout = self.clone();
        self.scan(move |keys| {
            let mut single = 0u64;
            let mut claims = Vec::new();
            for key in keys {
                match layout.parse(&key) {
                    Some((_, 'c' | 'l' | 'm' | 'r', _)) => single += 1,
                    Some((_, 'i', None)) => claims.push(key),
                    _ => {}
                }
            }
            each(claims, single, |key, total| {
                (
                    Request::plain("HLEN", vec![key], vec![]),
                    Box::new(move |reply: Reply| Ok(total + reply.unsigned::<u64>("claim count")?)),
                )
            })
        })
    }

    /// `Store::inspect`: the server's `TIME` (or the local reading), `SCAN`, then one read per
    /// key. Deadlines are reported on the local clock.
    #[must_use]
    pub fn inspect(&self, now: Now) -> Step<Inventory> {
        let layout = self.clone();
        let after_time = move |server_ms: u64| {
            let scanning = layout.clone();
            scanning.scan(move |keys| {
                let reads: Vec<(String, String, char, Option<String>)> = keys
                    .into_iter()
                    .filter_map(|key| {
                        let (name, kind, item) = layout.parse(&key)?;
                        let wanted = matches!((kind, item), ('c' | 'i', None) | ('l' | 'm' | 'r', Some(_)));
                        let (name, item) = (name.to_owned(), item.map(str::to_owned));
                        wanted.then_some((key, name, kind, item))
                    })
                    .collect();
                let read = each(reads, Listing::default(), move |(key, name, kind, item), listing| {
                    inspect_one(key, name, kind, item, listing, now.local_ms, server_ms)
                });
                finish(read, Listing::into_inventory)
            })
        };
        if now.judge_by_local {
            return after_time(now.local_ms);
        }
        send(Request::plain("TIME", vec![], vec![]), move |reply| {
            let time = reply.array::<2>("time").and_then(|[secs, micros]| {
                let secs: u64 = secs.unsigned("time")?;
                let micros: u64 = micros.unsigned("time")?;
                Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
            });
            match time {
                Ok(server_ms) => after_time(server_ms),
                Err(e) => Step::Done(Err(e)),
            }
        })
    }
}

/// What `inspect` has read so far: the inventory, and each counter's claim count (its own key).
#[derive(Default)]
struct Listing {
    inventory: Inventory,
    claims: Vec<(String, u64)>,
}

impl Listing {
    fn into_inventory(self) -> Inventory {
        let Listing { mut inventory, claims } = self;
        for (name, count) in claims {
            if let Some(counter) = inventory.counters.iter_mut().find(|c| c.counter == name) {
                counter.claims = count;
            }
        }
        inventory.sort();
        inventory
    }
}

/// The read of one key of `inspect`, and how its reply joins the listing. Deadlines on the
/// server's clock become deadlines on the local one: `local_ms` plus the time left.
fn inspect_one(
    key: String,
    name: String,
    kind: char,
    item: Option<String>,
    mut listing: Listing,
    local_ms: u64,
    server_ms: u64,
) -> (Request, Fold<Listing>) {
    let local = move |deadline: u64| local_ms.saturating_add(deadline.saturating_sub(server_ms));
    let item = item.unwrap_or_default();
    match kind {
        'c' => (
            Request::plain("GET", vec![key], vec![]),
            Box::new(move |reply: Reply| {
                if let Some(next) = reply.opt_stored("counter index")? {
                    listing.inventory.counters.push(CounterEntry { counter: name, next, claims: 0 });
                }
                Ok(listing)
            }),
        ),
        'i' => (
            Request::plain("HLEN", vec![key], vec![]),
            Box::new(move |reply: Reply| {
                listing.claims.push((name, reply.unsigned("claim count")?));
                Ok(listing)
            }),
        ),
        'l' => (
            Request::plain("HMGET", vec![key], vec!["t".into(), "d".into()]),
            Box::new(move |reply: Reply| {
                let [token, deadline] = reply.array("lease")?;
                if let (Some(token), Some(deadline)) =
                    (token.opt_stored("token")?, deadline.opt_stored::<u64>("deadline")?)
                {
                    if deadline > server_ms {
                        listing.inventory.leases.push(LeaseEntry {
                            lock: name,
                            key: item,
                            token,
                            deadline_ms: local(deadline),
                        });
                    }
                }
                Ok(listing)
            }),
        ),
        'm' => (
            Request::plain("HMGET", vec![key], vec!["n".into(), "e".into()]),
            Box::new(move |reply: Reply| {
                let [marked, expires] = reply.array("marks")?;
                if let (Some(marked), Some(expires)) =
                    (marked.opt_stored("marked count")?, expires.opt_stored::<u64>("expiry")?)
                {
                    if expires > server_ms {
                        let entry =
                            StreamEntry { guard: name, stream: item, marked, expires_at_ms: local(expires) };
                        listing.inventory.streams.push(entry);
                    }
                }
                Ok(listing)
            }),
        ),
        // 'r': a tombstone has a fence and no version, so no record.
        _ => (
            Request::plain("HGET", vec![key], vec!["ver".into()]),
            Box::new(move |reply: Reply| {
                if let Some(version) = reply.opt_stored("record version")? {
                    listing.inventory.records.push(RecordEntry { space: name, key: item, version });
                }
                Ok(listing)
            }),
        ),
    }
}

/// One request per item, in order, each folding its reply into the accumulator.
type Fold<A> = Box<dyn FnOnce(Reply) -> Result<A> + Send>;

fn each<I, A>(items: Vec<I>, start: A, plan: impl Fn(I, A) -> (Request, Fold<A>) + Send + 'static) -> Step<A>
where
    I: Send + 'static,
    A: Send + 'static,
{
    fn next<I: Send + 'static, A: Send + 'static>(
        mut items: std::vec::IntoIter<I>,
        acc: A,
        plan: impl Fn(I, A) -> (Request, Fold<A>) + Send + 'static,
    ) -> Step<A> {
        let Some(item) = items.next() else { return Step::Done(Ok(acc)) };
        let (request, fold) = plan(item, acc);
        send(request, move |reply| match fold(reply) {
            Ok(acc) => next(items, acc, plan),
            Err(e) => Step::Done(Err(e)),
        })
    }
    next(items.into_iter(), start, plan)
}

/// `step`, with `map` applied to its result.
fn finish<A: Send + 'static, B: 'static>(
    step: Step<A>,
    map: impl FnOnce(A) -> B + Send + 'static,
) -> Step<B> {
    match step {
        Step::Done(result) => Step::Done(result.map(map)),
        Step::Send(request, then) => send(request, move |reply| finish(then(reply), map)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives `step` with `answer` as the server; returns the result and every request sent.
    fn drive<T>(mut step: Step<T>, mut answer: impl FnMut(&Request) -> Reply) -> (Result<T>, Vec<Request>) {
        let mut sent = Vec::new();
        loop {
            match step {
                Step::Done(result) => return (result, sent),
                Step::Send(request, then) => {
                    let reply = answer(&request);
                    sent.push(request);
                    step = then(reply);
                }
            }
        }
    }

    fn one_reply<T>(step: Step<T>, reply: Reply) -> Result<T> {
        let mut replies = vec![reply];
        drive(step, |_| replies.pop().expect("one request")).0
    }

    fn code<T: std::fmt::Debug>(result: Result<T>) -> &'static str {
        result.expect_err("an error").code()
    }

    fn data(text: &str) -> Reply {
        Reply::Data(text.as_bytes().to_vec())
    }

    fn ints(values: &[i64]) -> Reply {
        Reply::Array(values.iter().map(|&n| Reply::Int(n)).collect())
    }

    fn error(code: &str, message: &str) -> Reply {
        Reply::Error { code: code.into(), message: message.into() }
    }

    const SERVER: Now = Now { local_ms: 1_000, judge_by_local: false };

    #[test]
    fn writes_with_replication_carry_their_wait_and_judge_its_count() {
        let replication = Replication { replicas: 2, timeout_ms: 300 };
        let layout = Layout::new("").with_replication(Some(replication));
        let ok = || Reply::Data(b"OK".to_vec());
        let pair = |reply: Reply, acked: i64| Reply::Array(vec![reply, ok(), Reply::Int(acked)]);

        let (next, sent) = drive(layout.counter_next("c"), |_| pair(Reply::Int(5), 2));
        let wait = Wait { replication, marker_key: layout.key("c", 'w', None) };
        assert_eq!((next, sent[0].wait.clone()), (Ok(4), Some(wait.clone())));
        let [marker, then] = wait.requests();
        assert_eq!(
            (marker.command.name(), &marker.keys, &marker.args[1]),
            ("SET", &vec![layout.key("c", 'w', None)], &"PX".to_owned())
        );
        assert_eq!((then.command.name(), then.args), ("WAIT", vec!["2".to_owned(), "300".to_owned()]));
        // A marker refused (a demoted primary) leaves the count about an older write: not replicated.
        let refused = Reply::Array(vec![Reply::Int(5), error("READONLY", "replica"), Reply::Int(2)]);
        assert_eq!(code(drive(layout.counter_next("c"), |_| refused.clone()).0), "timeout");
        // A claim that found its id is waited for as any write (its answer may rest on a write no
        // replica has: the marker makes WAIT cover it).
        let (claim, sent) = drive(layout.counter_claim("c", "run-1"), |_| pair(ints(&[3, 0]), 2));
        assert_eq!((claim.map(|c| c.index), sent[0].wait.is_some()), (Ok(3), true));
        let (next, _) = drive(layout.counter_next("c"), |_| pair(Reply::Int(5), 1));
        assert_eq!(
            next,
            Err(Error::Timeout { waited: std::time::Duration::from_millis(300) }),
            "applied, not replicated"
        );
        let (put, _) =
            drive(layout.record_put("s", "k", &serde_json::json!(1), Some(3), None, "req"), |_| {
                pair(ints(&[1, 4]), 0)
            });
        assert_eq!(code(put), "conflict", "nothing written: the write's own answer");
        assert_eq!(code(drive(layout.counter_next("c"), |_| Reply::Int(5)).0), "corrupt_data");
        assert_eq!(
            drive(layout.counter_peek("c"), |_| Reply::Int(5)).1[0].wait,
            None,
            "reads wait for nothing"
        );

        // A grant fewer replicas acknowledged is released (its token, no wait), then refused.
        let (grant, sent) = drive(layout.lease_try_grant("l", "k", 500, SERVER, "req"), |request| {
            match request.command.name() {
                "grant" => pair(ints(&[1, 9, 500]), 1),
                _ => Reply::Int(1),
            }
        });
        assert_eq!(code(grant.clone()), "backend_unavailable", "{grant:?}");
        assert!(format!("{grant:?}").contains("1 of 2 replicas"), "{grant:?}");
        assert_eq!(
            (sent[1].command.name(), &sent[1].args[1], sent[1].wait.clone()),
            ("release", &"9".to_owned(), None)
        );
        let (held, sent) =
            drive(layout.lease_try_grant("l", "k", 500, SERVER, "req"), |_| pair(ints(&[0, 0, 0]), 0));
        assert_eq!((held, sent.len()), (Ok(None), 1), "nothing granted, nothing to release");
        let (granted, _) =
            drive(layout.lease_try_grant("l", "k", 500, SERVER, "req"), |_| pair(ints(&[1, 9, 500]), 3));
        assert_eq!(granted, Ok(Some(LeaseGrant { token: 9, deadline_ms: 1_500 })));

        // A NOSCRIPT in the pair's first reply names the script to load.
        let request = Request { wait: Some(wait), ..Request::script(&scripts().grant, vec![], vec![]) };
        let noscript = pair(error("NOSCRIPT", "No matching script"), 0);
        assert_eq!(request.missing_script(&noscript).map(|s| s.name), Some("grant"));
        assert_eq!(request.missing_script(&pair(Reply::Int(1), 0)).map(|s| s.name), None);
    }

    #[test]
    fn keys_are_length_prefixed_and_parse_back() {
        let layout = Layout::new("ns");
        assert_eq!(layout.key("tasks", 'l', Some("k")), "rf:{2:ns5:tasks}l:k");
        assert_eq!(layout.key("c", 'c', None), "rf:{2:ns1:c}c");
        // Names holding the layout's own characters stay apart.
        for (name, item) in [("b:c", None), ("x}l:y", Some("z")), ("", Some("}")), ("é", Some("ü:"))] {
            let kind = if item.is_some() { 'l' } else { 'c' };
            assert_eq!(layout.parse(&layout.key(name, kind, item)), Some((name, kind, item)));
        }
        assert_ne!(Layout::new("a").key("b:c", 'c', None), Layout::new("a:b").key("c", 'c', None));
        assert_eq!(layout.parse("rf:{3:nsx5:tasks}l:k"), None, "another namespace");
        assert_eq!(layout.parse("rf:{2:ns9:tasks}c"), None, "a length past the key");
        assert_eq!(Layout::new("a*[b]").scan_pattern(), r"rf:{5:a\*\[b\]*");
    }

    #[test]
    fn counter_next_is_one_incr_and_tells_overflow_from_a_foreign_value() {
        let layout = Layout::new("");
        let (result, sent) = drive(layout.counter_next("c"), |_| Reply::Int(5));
        assert_eq!(result, Ok(4));
        assert_eq!(
            (sent.len(), sent[0].command.name(), sent[0].keys.as_slice()),
            (1, "INCR", ["rf:{0:1:c}c".to_owned()].as_slice())
        );
        assert_eq!(
            code(one_reply(layout.counter_next("c"), Reply::Int(0))),
            "corrupt_data",
            "the key held -1"
        );
        let refused = error("ERR", "increment or decrement would overflow");
        let answer = |held: Reply| {
            let mut replies = vec![held, refused.clone()];
            drive(layout.counter_next("c"), move |_| replies.pop().expect("two requests"))
        };
        let (overflow, sent) = answer(data(&i64::MAX.to_string()));
        assert_eq!((code(overflow), sent[1].command.name()), ("invalid_argument", "GET"));
        assert_eq!(code(answer(data("abc")).0), "corrupt_data");
        assert_eq!(code(answer(Reply::Nil).0), "corrupt_data");
        assert_eq!(code(one_reply(layout.counter_next("c"), error("WRONGTYPE", "a hash"))), "corrupt_data");
        assert_eq!(
            code(one_reply(layout.counter_next("c"), error("READONLY", "a replica"))),
            "backend_unavailable"
        );
        assert_eq!(code(one_reply(layout.counter_next("c"), Reply::Status("OK".into()))), "corrupt_data");
    }

    #[test]
    fn claims_decode_every_reply() {
        let layout = Layout::new("");
        let (claim, sent) = drive(layout.counter_claim("c", "e1"), |_| ints(&[3, 1]));
        assert_eq!(claim, Ok(Claim { index: 3, is_new: true }));
        assert_eq!(sent[0].command.name(), "claim");
        assert_eq!(sent[0].args, ["e1".to_owned(), LUA_MAX_EXACT.to_string()]);
        assert_eq!(sent[0].keys, ["rf:{0:1:c}i".to_owned(), "rf:{0:1:c}c".to_owned()]);
        assert_eq!(
            one_reply(layout.counter_claim("c", "e1"), ints(&[3, 0])),
            Ok(Claim { index: 3, is_new: false })
        );
        assert_eq!(code(one_reply(layout.counter_claim("c", "e1"), ints(&[-1, 0]))), "invalid_argument");
        assert_eq!(code(one_reply(layout.counter_claim("c", "e1"), ints(&[-3, 0]))), "corrupt_data");
        assert_eq!(code(one_reply(layout.counter_claim("c", "e1"), ints(&[3]))), "corrupt_data");
        assert_eq!(one_reply(layout.counter_index_of("c", "e1"), Reply::Nil), Ok(None));
        assert_eq!(one_reply(layout.counter_index_of("c", "e1"), data("7")), Ok(Some(7)));
        for bad in [data("-3"), data("x"), data("9223372036854775808")] {
            assert_eq!(code(one_reply(layout.counter_index_of("c", "e1"), bad)), "corrupt_data");
        }
        assert_eq!(one_reply(layout.counter_peek("c"), Reply::Nil), Ok(0));
        assert_eq!(one_reply(layout.counter_peek("c"), data("12")), Ok(12));
        // Refused before anything is sent.
        let (set, sent) = drive(layout.counter_set("c", u64::MAX), |_| unreachable!("nothing to send"));
        assert_eq!((code(set), sent.len()), ("invalid_argument", 0));
        assert_eq!(one_reply(layout.counter_set("c", 5), Reply::Status("OK".into())), Ok(()));
        assert_eq!(one_reply(layout.counter_reset("c"), Reply::Int(2)), Ok(()));
    }

    #[test]
    fn marks_and_leases_decode_every_reply() {
        let layout = Layout::new("");
        let mark = |reply| one_reply(layout.guard_mark("g", "s", 1, 60_000, SERVER, "req"), reply);
        assert_eq!(mark(ints(&[0, 2])), Ok(MarkOutcome::First));
        assert_eq!(mark(ints(&[1, 2])), Ok(MarkOutcome::Duplicate));
        assert_eq!(mark(ints(&[2, 0])), Ok(MarkOutcome::OutOfOrder { marked: 0 }));
        assert_eq!(code(mark(ints(&[2, -1]))), "corrupt_data");
        assert_eq!(code(mark(ints(&[7, 0]))), "corrupt_data");
        assert_eq!(one_reply(layout.guard_marked("g", "s", SERVER), Reply::Int(2)), Ok(2));
        assert_eq!(
            code(one_reply(layout.guard_marked("g", "s", SERVER), Reply::Int(1 << 40))),
            "corrupt_data"
        );
        assert_eq!(one_reply(layout.guard_forget("g", "s", SERVER), Reply::Int(1)), Ok(true));

        let (grant, sent) =
            drive(layout.lease_try_grant("l", "k", 500, SERVER, "req"), |_| ints(&[1, 9, 500]));
        assert_eq!(grant, Ok(Some(LeaseGrant { token: 9, deadline_ms: 1_500 })));
        assert_eq!(
            sent[0].args,
            [String::new(), "500".to_owned(), "req".to_owned()],
            "the server's clock judges"
        );
        let local = Now { local_ms: 77, judge_by_local: true };
        let (_, sent) = drive(layout.lease_try_grant("l", "k", 500, local, "req"), |_| ints(&[0, 0, 0]));
        assert_eq!(sent[0].args[0], "77", "the injected clock judges");
        assert_eq!(
            one_reply(layout.lease_try_grant("l", "k", 500, SERVER, "req"), ints(&[0, 0, 0])),
            Ok(None)
        );
        assert_eq!(
            code(one_reply(layout.lease_try_grant("l", "k", 500, SERVER, "req"), ints(&[1, -9, 500]))),
            "corrupt_data"
        );
        let exhausted = one_reply(layout.lease_try_grant("l", "k", 500, SERVER, "req"), ints(&[2, 0, 0]))
            .expect_err("no token left");
        assert_eq!(exhausted.code(), "invalid_argument");
        assert!(exhausted.to_string().contains("lock \"l\" has issued its largest"), "{exhausted}");
        assert_eq!(one_reply(layout.lease_renew("l", "k", 9, 300, SERVER), Reply::Int(1)), Ok(1_300));
        assert_eq!(code(one_reply(layout.lease_renew("l", "k", 9, 300, SERVER), Reply::Int(0))), "not_owner");
        assert_eq!(code(one_reply(layout.lease_release("l", "k", 9, SERVER), Reply::Int(0))), "not_owner");
        assert_eq!(
            one_reply(layout.lease_holder("l", "k", SERVER), ints(&[1, 9, 250])),
            Ok(Some(LeaseGrant { token: 9, deadline_ms: 1_250 }))
        );
        assert_eq!(one_reply(layout.lease_holder("l", "k", SERVER), ints(&[0, 0, 0])), Ok(None));
    }

    #[test]
    fn records_decode_every_reply() {
        let layout = Layout::new("");
        let get = |reply| one_reply(layout.record_get("r", "k"), reply);
        assert_eq!(get(Reply::Array(vec![Reply::Nil, Reply::Nil])), Ok(None), "absent, or a tombstone");
        let found = get(Reply::Array(vec![data(r#"{"a":1}"#), data("3")]));
        assert_eq!(found, Ok(Some(Versioned { value: serde_json::json!({"a": 1}), version: 3 })));
        assert_eq!(code(get(Reply::Array(vec![data("{no"), data("3")]))), "corrupt_data");
        assert_eq!(code(get(Reply::Array(vec![data("1"), data("-3")]))), "corrupt_data");
        let put = |reply| {
            one_reply(layout.record_put("r", "k", &serde_json::json!(1), Some(2), Some(5), "req"), reply)
        };
        assert_eq!(put(ints(&[0, 3])), Ok(3));
        assert_eq!(put(ints(&[1, -1])), Err(Error::Conflict { key: "k".into(), current_version: None }));
        assert_eq!(put(ints(&[1, 4])), Err(Error::Conflict { key: "k".into(), current_version: Some(4) }));
        assert_eq!(put(ints(&[2, 7])), Err(Error::StaleToken { key: "k".into(), token: 5, latest: 7 }));
        assert_eq!(code(put(ints(&[1, -2]))), "corrupt_data");
        let (_, sent) =
            drive(layout.record_put("r", "k", &serde_json::json!(1), None, None, "req"), |_| ints(&[0, 1]));
        assert_eq!(
            sent[0].keys,
            ["rf:{0:1:r}r:k".to_owned(), "rf:{0:1:r}f".to_owned()],
            "the record and its space's floor"
        );
        assert_eq!(sent[0].args, ["1".to_owned(), String::new(), String::new(), "req".to_owned()]);
        assert_eq!(one_reply(layout.record_delete("r", "k", None), ints(&[0, 1])), Ok(true));
        assert_eq!(one_reply(layout.record_delete("r", "k", None), ints(&[0, 0])), Ok(false));
        assert_eq!(code(one_reply(layout.record_delete("r", "k", Some(1)), ints(&[1, 2]))), "conflict");
    }

    #[test]
    fn sweep_scans_every_page_then_sweeps_leases_and_streams_only() {
        let layout = Layout::new("");
        let (lease, marks, counter) =
            (layout.key("l", 'l', Some("k")), layout.key("g", 'm', Some("s")), layout.key("c", 'c', None));
        let pages = [("7", vec![lease.clone()]), ("0", vec![counter, marks.clone()])];
        let mut page = 0;
        let (removed, sent) = drive(layout.sweep(SERVER), |request| match request.command.name() {
            "SCAN" => {
                let (cursor, keys) = &pages[page];
                page += 1;
                Reply::Array(vec![data(cursor), Reply::Array(keys.iter().map(|k| data(k)).collect())])
            }
            "sweep_one" => Reply::Int(1),
            other => panic!("unexpected {other}"),
        });
        assert_eq!(removed, Ok(2));
        let names: Vec<_> = sent.iter().map(|r| (r.command.name(), r.args.first().cloned())).collect();
        assert_eq!(names[1], ("SCAN", Some("7".to_owned())), "the second page from the first's cursor");
        assert_eq!(sent[2].keys, [lease]);
        assert_eq!(sent[2].args[1], "d");
        assert_eq!((sent[3].keys.as_slice(), sent[3].args[1].as_str()), ([marks].as_slice(), "e"));
        assert_eq!(sent.len(), 4, "the counter is not swept");
    }

    #[test]
    fn inspect_reports_deadlines_on_the_local_clock() {
        let layout = Layout::new("");
        let keys = [
            layout.key("l", 'l', Some("k")),
            layout.key("c", 'c', None),
            layout.key("c", 'i', None),
            layout.key("r", 'r', Some("t")),
        ];
        let (inventory, _) =
            drive(layout.inspect(SERVER), |request| match (request.command.name(), request.keys.first()) {
                ("TIME", _) => Reply::Array(vec![data("5"), data("0")]), // 5,000 ms on the server
                ("SCAN", _) => {
                    Reply::Array(vec![data("0"), Reply::Array(keys.iter().map(|k| data(k)).collect())])
                }
                ("HMGET", _) => Reply::Array(vec![data("9"), data("5400")]),
                ("GET", _) => data("3"),
                ("HLEN", _) => Reply::Int(2),
                ("HGET", _) => Reply::Nil, // a tombstone
                other => panic!("unexpected {other:?}"),
            });
        let inventory = inventory.expect("inspect");
        assert_eq!(
            inventory.leases,
            [LeaseEntry { lock: "l".into(), key: "k".into(), token: 9, deadline_ms: 1_400 }]
        );
        assert_eq!(inventory.counters, [CounterEntry { counter: "c".into(), next: 3, claims: 2 }]);
        assert!(inventory.records.is_empty(), "a tombstone is listed");
    }

    #[test]
    fn scripts_are_named_by_their_sha1() {
        let scripts = scripts();
        for script in [&scripts.claim, &scripts.grant, &scripts.put, &scripts.delete, &scripts.sweep_one] {
            assert_eq!(script.sha1, sha1_smol::Sha1::from(&script.text).digest().to_string());
            assert_eq!(script.sha1.len(), 40);
        }
        assert!(
            scripts.grant.text.contains("local function now_ms()"),
            "timed scripts read the clock argument"
        );
        assert!(!scripts.put.text.contains("now_ms"), "record writes do not depend on time");
    }
}
