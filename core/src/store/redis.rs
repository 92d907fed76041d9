//! The Redis store: many machines share one server; every operation is one command or one Lua
//! script (loaded once, called by its hash with `EVALSHA`).
//!
//! **Keys.** Every key of one primitive instance shares a hash tag, so each script touches one
//! slot and also runs on Redis Cluster:
//!
//! ```text
//! rf:{<len ns>:<namespace><len name>:<name>}<kind>[:<item>]
//! ```
//!
//! The lengths make the layout unambiguous whatever characters names hold. Kinds: `c` counter
//! (the next index, an integer), `i` its claims (hash id → index), `t` a lock's token counter
//! (never deleted, so tokens grow across keys, expiry and restarts), `l:<key>` a lease (hash
//! `t` token, `d` deadline; `PX` set to the TTL), `m:<stream>` a stream's marks (hash `n` marked,
//! `e` expiry; `PX` set to the retention), `r:<key>` a record (hash `v` JSON, `ver`, `f` fence;
//! a deleted record that accepted a fencing token keeps only `f`, its tombstone), `f` the largest
//! version the record space has deleted (new records start above it).
//!
//! **Time.** Handed the wall clock ([`SystemClock`](crate::SystemClock)), deadlines are judged by
//! the server's own clock (`TIME` inside each script) and enforced by Redis itself through
//! `PEXPIRE`, so client clocks don't matter. Handed any other clock (a
//! [`ManualClock`](crate::ManualClock) in tests), scripts judge deadlines by that clock instead,
//! and expired keys stay until [`Store::sweep`] removes them (Redis' own expiry would follow the
//! real time, not that clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use redis::{Client, Connection, ConnectionLike, RedisError, Script};
use serde_json::Value;

use super::fork::OpenedIn;
use super::{
    counter_overflow, counter_value_i64, decoded, Claim, CounterEntry, Inventory, LeaseEntry, LeaseGrant,
    MarkOutcome, RecordEntry, Store, StoreStats, StreamEntry, Versioned,
};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// Lua integers are doubles: a claim refuses to go past the largest one that is exact.
const LUA_MAX_EXACT: u64 = (1 << 53) - 1;

/// Connections kept open for reuse; more are opened under load and closed when returned.
const MAX_IDLE: usize = 64;

/// Options of a [`RedisStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefixes every key: stores with different namespaces share a server without sharing keys.
    pub namespace: String,
    /// How long connecting, or one request, may take before failing with `timeout`.
    pub timeout: Duration,
    /// Refuse to open unless the server runs `appendonly yes` with `appendfsync always`: every
    /// acknowledged index and token is on disk before the reply, so a server crash can't issue
    /// one twice. With `everysec` (Redis' default for AOF) a crash can lose the last second and a
    /// counter can go backwards. Off by default: the server's configuration is the operator's call.
    pub require_fsync: bool,
    /// `rediss://` only: the CA certificate (PEM file) to verify the server with, instead of the
    /// system's trust store.
    pub tls_ca: Option<std::path::PathBuf>,
    /// `rediss://` only: a client certificate and its key (PEM files), for servers that
    /// authenticate clients (`tls-auth-clients yes`, Redis' default).
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl RedisOptions {
    /// These options with the given namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// These options with the given connect and request timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// These options requiring (or not) a server that fsyncs every write.
    #[must_use]
    pub fn with_require_fsync(mut self, require: bool) -> Self {
        self.require_fsync = require;
        self
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            timeout: Duration::from_secs(5),
            require_fsync: false,
            tls_ca: None,
            tls_client: None,
        }
    }
}

/// The time source of every script: the injected clock's reading, or the server's `TIME`.
const NOW: &str = "
local function now_ms()
  if ARGV[1] ~= '' then return tonumber(ARGV[1]) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

// KEYS[1] marks; ARGV[1] now, ARGV[2] position, ARGV[3] retention. -> {0 first | 1 duplicate | 2 out of order, marked}.
const MARK: &str = "
local now = now_ms()
local v = redis.call('HMGET', KEYS[1], 'n', 'e')
local marked = 0
if v[1] and tonumber(v[2]) > now then marked = tonumber(v[1]) end
local position = tonumber(ARGV[2])
if position < marked then return {1, marked} end
if position > marked then return {2, marked} end
redis.call('HSET', KEYS[1], 'n', int(marked + 1), 'e', int(now + tonumber(ARGV[3])))
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

// KEYS[1] lease, KEYS[2] token counter; ARGV[1] now, ARGV[2] ttl. -> {granted, token, ms left}.
const GRANT: &str = "
local now = now_ms()
local deadline = redis.call('HGET', KEYS[1], 'd')
if deadline and tonumber(deadline) > now then return {0, 0, 0} end
local token = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 't', int(token), 'd', int(now + tonumber(ARGV[2])))
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
// version or '', ARGV[3] fencing token or ''.
// -> {0 written, new version} | {1 conflict, version or -1} | {2 stale token, latest}.
// The same rules as `decide_record_write`; they must live in the script to be one atomic step.
const PUT: &str = "
local cur = redis.call('HMGET', KEYS[1], 'v', 'ver', 'f')
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
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', string.format('%d', version + 1), 'f', new_fence)
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
if tonumber(cur[3] or '0') > 0 then redis.call('HDEL', KEYS[1], 'v', 'ver') else redis.call('DEL', KEYS[1]) end
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

/// The store's scripts, hashed once.
struct Scripts {
    claim: Script,
    mark: Script,
    marked: Script,
    forget: Script,
    grant: Script,
    renew: Script,
    release: Script,
    holder: Script,
    put: Script,
    delete: Script,
    sweep_one: Script,
}

impl Scripts {
    fn new() -> Self {
        let timed = |body: &str| Script::new(&format!("{NOW}{body}"));
        Self {
            claim: Script::new(CLAIM),
            mark: timed(MARK),
            marked: timed(MARKED),
            forget: timed(FORGET),
            grant: timed(GRANT),
            renew: timed(RENEW),
            release: timed(RELEASE),
            holder: timed(HOLDER),
            put: Script::new(PUT),
            delete: Script::new(DELETE),
            sweep_one: timed(SWEEP_ONE),
        }
    }
}

/// The Redis store. Cheap to share between threads: each call borrows one pooled connection
/// (opening one when none is idle), so N threads make N concurrent requests.
pub struct RedisStore {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    /// A child after `fork()` drops the inherited connections and opens its own (see [`OpenedIn`]).
    opened_in: OpenedIn,
    clock: SharedClock,
    /// Deadlines are judged by `clock` (passed to each script) instead of the server's `TIME`.
    judge_by_clock: bool,
    options: RedisOptions,
    /// `rf:{<len ns>:<ns>`: the start of every key of this namespace.
    prefix: String,
    scripts: Scripts,
    expired_swept: AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.client.get_connection_info().addr().to_string())
            .field("namespace", &self.options.namespace)
            .field("judge_by_clock", &self.judge_by_clock)
            .finish_non_exhaustive()
    }
}

/// The checks of `url` and `options` that need no server: namespace, timeout, TLS options only
/// with `rediss://`, and a URL the client can read.
pub(super) fn check_options(url: &str, options: &RedisOptions) -> Result<()> {
    use redis::IntoConnectionInfo as _;

    crate::validate::namespace(&options.namespace)?;
    if options.timeout.is_zero() {
        return Err(Error::invalid_argument("the redis timeout must be positive"));
    }
    if !url.starts_with("rediss://") && (options.tls_ca.is_some() || options.tls_client.is_some()) {
        return Err(Error::invalid_argument("TLS options need a rediss:// URL"));
    }
    url.into_connection_info().map_err(|e| Error::invalid_argument(format!("bad redis URL {url:?}: {e}")))?;
    Ok(())
}

/// A failed request as a racefree error: `timeout` when the server did not answer in time;
/// `corrupt_data` for a key of another type (`WRONGTYPE`) or a reply the client cannot read as
/// what it must be (a negative or non-numeric number: redis-rs reports both as parse errors);
/// `backend_unavailable` for everything else (refused, dropped, a server-side error).
fn classify(err: &RedisError, timeout: Duration) -> Error {
    if err.is_timeout() {
        Error::Timeout { waited: timeout }
    } else if matches!(err.kind(), redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType)
        || err.code() == Some("WRONGTYPE")
    {
        Error::corrupt(format!("redis: a key holds what racefree did not write: {err}"))
    } else {
        Error::unavailable_because(format!("redis: {err}"), err.clone())
    }
}

/// `Some(n)` as its decimal text, `None` as "" (what the scripts read as "none").
fn opt_arg(value: Option<u64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A conflict's "current version" reply: -1 for no record.
fn version_or_none(number: i64) -> Result<Option<u64>> {
    if number == -1 {
        Ok(None)
    } else {
        unsigned("record version", number).map(Some)
    }
}

/// A reply's integer as the unsigned number it must be, or `corrupt_data`.
fn unsigned<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T> {
    decoded("redis", what, value)
}

impl RedisStore {
    /// Connects to the server at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS) and checks that it answers.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed URL, namespace or unreadable certificate file;
    /// [`Error::BackendUnavailable`] when the server cannot be reached or its certificate is not
    /// trusted; [`Error::Timeout`] when it does not answer within the timeout.
    pub fn open(url: &str, clock: SharedClock, options: RedisOptions) -> Result<Self> {
        check_options(url, &options)?;
        let bad_url = |e: RedisError| Error::invalid_argument(format!("bad redis URL {url:?}: {e}"));
        let client = if url.starts_with("rediss://") {
            // rustls needs one process-wide crypto provider; a second install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Client::build_with_tls(url, tls_certificates(&options)?).map_err(bad_url)?
        } else {
            Client::open(url).map_err(bad_url)?
        };
        let ns = &options.namespace;
        let store = Self {
            client,
            idle: Mutex::new(Vec::new()),
            opened_in: OpenedIn::this_process(),
            judge_by_clock: !clock.is_wall_clock(),
            clock,
            prefix: format!("rf:{{{}:{ns}", ns.len()),
            options,
            scripts: Scripts::new(),
            expired_swept: AtomicU64::new(0),
        };
        store.call(|conn| redis::cmd("PING").query::<()>(conn))?;
        if store.options.require_fsync {
            store.check_fsync()?;
        }
        Ok(store)
    }

    fn check_fsync(&self) -> Result<()> {
        let config = |name: &'static str| {
            self.call(|conn| redis::cmd("CONFIG").arg("GET").arg(name).query::<Vec<String>>(conn))
                .map(|pair| pair.get(1).cloned().unwrap_or_default())
        };
        let (appendonly, appendfsync) = (config("appendonly")?, config("appendfsync")?);
        if appendonly == "yes" && appendfsync == "always" {
            return Ok(());
        }
        Err(Error::unavailable(format!(
            "redis: require_fsync needs `appendonly yes` and `appendfsync always`; the server runs \
             appendonly {appendonly:?}, appendfsync {appendfsync:?}"
        )))
    }

    /// Runs one request on a pooled connection. A connection that failed at the transport level
    /// is dropped with every idle one (after a server restart they are all dead); the next call
    /// connects afresh, so the store recovers without being reopened.
    fn call<T>(&self, request: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T> {
        if self.opened_in.moved() {
            // Dropping closes this process's copies of the sockets and sends nothing: the sync
            // connection has no goodbye of its own, rustls sends no close_notify unasked, and
            // the parent still holds the sockets, so not even a FIN goes out.
            drop(std::mem::take(&mut *self.idle.lock()));
            self.opened_in.settled();
        }
        let idle = self.idle.lock().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        match request(&mut conn) {
            Ok(value) => {
                self.give_back(conn);
                Ok(value)
            }
            Err(err) => {
                if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || !conn.is_open() {
                    self.idle.lock().clear();
                } else {
                    self.give_back(conn);
                }
                Err(classify(&err, self.options.timeout))
            }
        }
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    fn connect(&self) -> Result<Connection> {
        let timeout = self.options.timeout;
        let conn = self.client.get_connection_with_timeout(timeout).map_err(|e| classify(&e, timeout))?;
        conn.set_read_timeout(Some(timeout)).map_err(|e| classify(&e, timeout))?;
        conn.set_write_timeout(Some(timeout)).map_err(|e| classify(&e, timeout))?;
        Ok(conn)
    }

    /// Why the server refused `INCR` on a counter, told by what the key holds (the refusal's
    /// code is `ERR` either way): `i64::MAX` is this counter's overflow; anything else (text, a
    /// negative number past range) was not written by racefree.
    fn refused_increment(&self, counter: &str, key: &str, refused: &RedisError) -> Error {
        match self.call(|conn| redis::cmd("GET").arg(key).query::<Option<String>>(conn)) {
            Ok(Some(held)) if held == i64::MAX.to_string() => counter_overflow(counter),
            Ok(held) => {
                Error::corrupt(format!("redis: counter {counter:?} holds {held:?}, not an index ({refused})"))
            }
            Err(err) => err,
        }
    }

    /// The key of primitive instance `name`, of `kind`, for `item`.
    fn key(&self, name: &str, kind: char, item: Option<&str>) -> String {
        match item {
            Some(item) => format!("{}{}:{name}}}{kind}:{item}", self.prefix, name.len()),
            None => format!("{}{}:{name}}}{kind}", self.prefix, name.len()),
        }
    }

    /// The `now` argument of the scripts ("" lets the server read its own clock), and the
    /// injected clock's reading, to turn the scripts' "milliseconds left" into a deadline.
    fn now(&self) -> (String, u64) {
        let now = self.clock.now_ms();
        (if self.judge_by_clock { now.to_string() } else { String::new() }, now)
    }

    /// Every key of this namespace, by `SCAN` (not a point-in-time snapshot).
    fn scan(&self) -> Result<Vec<String>> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        self.call(|conn| {
            let mut keys = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(conn)?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
    }

    /// Splits a key of this namespace into `(name, kind, item)`.
    fn parse<'k>(&self, key: &'k str) -> Option<(&'k str, char, Option<&'k str>)> {
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

    /// The server's time (or the injected clock's) and the injected clock's, read together.
    fn times(&self) -> Result<(u64, u64)> {
        let local = self.clock.now_ms();
        if self.judge_by_clock {
            return Ok((local, local));
        }
        let (secs, micros): (u64, u64) = self.call(|conn| redis::cmd("TIME").query(conn))?;
        Ok((secs * 1000 + micros / 1000, local))
    }
}

/// The CA and client certificates named by the options, read from their PEM files.
fn tls_certificates(options: &RedisOptions) -> Result<redis::TlsCertificates> {
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| Error::invalid_argument(format!("cannot read TLS file {}: {e}", path.display())))
    };
    let client_tls = match &options.tls_client {
        Some((cert, key)) => {
            Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? })
        }
        None => None,
    };
    let root_cert = options.tls_ca.as_deref().map(read).transpose()?;
    Ok(redis::TlsCertificates { client_tls, root_cert })
}

/// Escapes the characters `SCAN MATCH` treats as a pattern.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

impl Store for RedisStore {
    fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn namespace(&self) -> &str {
        &self.options.namespace
    }

    fn counter_next(&self, counter: &str) -> Result<u64> {
        let key = self.key(counter, 'c', None);
        // One INCR: the same command redis-benchmark measures.
        let next = self.call(|conn| match redis::cmd("INCR").arg(&key).query::<i64>(conn) {
            // The server refused it, changing nothing: the key tells why.
            Err(err) if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                Ok(Err(err))
            }
            other => other.map(Ok),
        })?;
        match next {
            Ok(next) => unsigned("counter index", next - 1),
            Err(refused) => Err(self.refused_increment(counter, &key, &refused)),
        }
    }

    fn counter_claim(&self, counter: &str, id: &str) -> Result<Claim> {
        let (claims, key) = (self.key(counter, 'i', None), self.key(counter, 'c', None));
        let (index, is_new): (i64, i64) = self
            .call(|conn| self.scripts.claim.key(&claims).key(&key).arg(id).arg(LUA_MAX_EXACT).invoke(conn))?;
        if index == -1 {
            return Err(Error::invalid_argument(format!(
                "counter {counter:?} is past 2^53 - 1, the largest index a Redis claim can issue"
            )));
        }
        Ok(Claim { index: unsigned("claimed index", index)?, is_new: is_new == 1 })
    }

    fn counter_index_of(&self, counter: &str, id: &str) -> Result<Option<u64>> {
        let claims = self.key(counter, 'i', None);
        self.call(|conn| redis::cmd("HGET").arg(&claims).arg(id).query::<Option<u64>>(conn))
    }

    fn counter_peek(&self, counter: &str) -> Result<u64> {
        let key = self.key(counter, 'c', None);
        Ok(self.call(|conn| redis::cmd("GET").arg(&key).query::<Option<u64>>(conn))?.unwrap_or(0))
    }

    fn counter_set(&self, counter: &str, next: u64) -> Result<()> {
        let next = counter_value_i64("Redis", next)?;
        let key = self.key(counter, 'c', None);
        self.call(|conn| redis::cmd("SET").arg(&key).arg(next).query::<()>(conn))
    }

    fn counter_reset(&self, counter: &str) -> Result<()> {
        let (key, claims) = (self.key(counter, 'c', None), self.key(counter, 'i', None));
        self.call(|conn| redis::cmd("DEL").arg(&key).arg(&claims).query::<()>(conn))
    }

    fn guard_mark(&self, guard: &str, stream: &str, position: u32, retention_ms: u64) -> Result<MarkOutcome> {
        let key = self.key(guard, 'm', Some(stream));
        let (now, _) = self.now();
        let (outcome, marked): (i64, i64) = self.call(|conn| {
            self.scripts.mark.key(&key).arg(&now).arg(position).arg(retention_ms).invoke(conn)
        })?;
        Ok(match outcome {
            0 => MarkOutcome::First,
            1 => MarkOutcome::Duplicate,
            _ => MarkOutcome::OutOfOrder { marked: unsigned("marked count", marked)? },
        })
    }

    fn guard_marked(&self, guard: &str, stream: &str) -> Result<u32> {
        let key = self.key(guard, 'm', Some(stream));
        let (now, _) = self.now();
        let marked: i64 = self.call(|conn| self.scripts.marked.key(&key).arg(&now).invoke(conn))?;
        unsigned("marked count", marked)
    }

    fn guard_forget(&self, guard: &str, stream: &str) -> Result<bool> {
        let key = self.key(guard, 'm', Some(stream));
        let (now, _) = self.now();
        let forgot: i64 = self.call(|conn| self.scripts.forget.key(&key).arg(&now).invoke(conn))?;
        Ok(forgot == 1)
    }

    fn lease_try_grant(&self, lock: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseGrant>> {
        let (lease, tokens) = (self.key(lock, 'l', Some(key)), self.key(lock, 't', None));
        // Read before the request: the deadline this handle reports is never later than the server's.
        let (now, local) = self.now();
        let (granted, token, left): (i64, i64, i64) =
            self.call(|conn| self.scripts.grant.key(&lease).key(&tokens).arg(&now).arg(ttl_ms).invoke(conn))?;
        if granted != 1 {
            return Ok(None);
        }
        Ok(Some(LeaseGrant {
            token: unsigned("token", token)?,
            deadline_ms: local.saturating_add(unsigned("ttl", left)?),
        }))
    }

    fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Result<u64> {
        let lease = self.key(lock, 'l', Some(key));
        let (now, local) = self.now();
        let renewed: i64 =
            self.call(|conn| self.scripts.renew.key(&lease).arg(&now).arg(token).arg(ttl_ms).invoke(conn))?;
        if renewed == 1 {
            Ok(local.saturating_add(ttl_ms))
        } else {
            Err(Error::NotOwner { key: key.to_owned(), token })
        }
    }

    fn lease_release(&self, lock: &str, key: &str, token: u64) -> Result<()> {
        let lease = self.key(lock, 'l', Some(key));
        let (now, _) = self.now();
        let released: i64 =
            self.call(|conn| self.scripts.release.key(&lease).arg(&now).arg(token).invoke(conn))?;
        if released == 1 {
            Ok(())
        } else {
            Err(Error::NotOwner { key: key.to_owned(), token })
        }
    }

    fn lease_holder(&self, lock: &str, key: &str) -> Result<Option<LeaseGrant>> {
        let lease = self.key(lock, 'l', Some(key));
        let (now, local) = self.now();
        let (held, token, left): (i64, i64, i64) =
            self.call(|conn| self.scripts.holder.key(&lease).arg(&now).invoke(conn))?;
        if held != 1 {
            return Ok(None);
        }
        Ok(Some(LeaseGrant {
            token: unsigned("token", token)?,
            deadline_ms: local.saturating_add(unsigned("lease time left", left)?),
        }))
    }

    fn record_get(&self, space: &str, key: &str) -> Result<Option<Versioned>> {
        let record = self.key(space, 'r', Some(key));
        let (text, version): (Option<String>, Option<u64>) =
            self.call(|conn| redis::cmd("HMGET").arg(&record).arg("v").arg("ver").query(conn))?;
        let (Some(text), Some(version)) = (text, version) else { return Ok(None) };
        let value = serde_json::from_str(&text)
            .map_err(|e| Error::corrupt(format!("redis: record {key:?} holds invalid JSON: {e}")))?;
        Ok(Some(Versioned { value, version }))
    }

    fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Result<u64> {
        let (record, floor) = (self.key(space, 'r', Some(key)), self.key(space, 'f', None));
        let text = value.to_string();
        let (outcome, number): (i64, i64) = self.call(|conn| {
            self.scripts
                .put
                .key(&record)
                .key(&floor)
                .arg(&text)
                .arg(opt_arg(expected_version))
                .arg(opt_arg(fencing_token))
                .invoke(conn)
        })?;
        match outcome {
            0 => unsigned("record version", number),
            1 => Err(Error::Conflict { key: key.to_owned(), current_version: version_or_none(number)? }),
            _ => Err(Error::StaleToken {
                key: key.to_owned(),
                token: fencing_token.unwrap_or(0),
                latest: unsigned("fence", number)?,
            }),
        }
    }

    fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Result<bool> {
        let (record, floor) = (self.key(space, 'r', Some(key)), self.key(space, 'f', None));
        let (outcome, number): (i64, i64) = self.call(|conn| {
            self.scripts.delete.key(&record).key(&floor).arg(opt_arg(expected_version)).invoke(conn)
        })?;
        match outcome {
            0 => Ok(number == 1),
            _ => Err(Error::Conflict { key: key.to_owned(), current_version: version_or_none(number)? }),
        }
    }

    fn sweep(&self) -> Result<u64> {
        let (now, _) = self.now();
        let mut removed = 0;
        for key in self.scan()? {
            let field = match self.parse(&key) {
                Some((_, 'l', Some(_))) => "d",
                Some((_, 'm', Some(_))) => "e",
                _ => continue,
            };
            let gone: i64 =
                self.call(|conn| self.scripts.sweep_one.key(&key).arg(&now).arg(field).invoke(conn))?;
            removed += unsigned::<u64>("swept count", gone)?;
        }
        self.expired_swept.fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    fn stats(&self) -> Result<StoreStats> {
        let mut entries = 0;
        for key in self.scan()? {
            entries += match self.parse(&key) {
                Some((_, 'c' | 'l' | 'm' | 'r', _)) => 1,
                Some((_, 'i', None)) => self.call(|conn| redis::cmd("HLEN").arg(&key).query::<u64>(conn))?,
                _ => 0,
            };
        }
        Ok(StoreStats { entries, expired_swept: self.expired_swept.load(Ordering::Relaxed) })
    }

    fn inspect(&self) -> Result<Inventory> {
        let (server_now, local_now) = self.times()?;
        let mut inventory = Inventory::default();
        for key in self.scan()? {
            let Some((name, kind, item)) = self.parse(&key) else { continue };
            match (kind, item) {
                ('c', None) => {
                    let claims = self.key(name, 'i', None);
                    let (next, count): (Option<u64>, u64) = self.call(|conn| {
                        redis::pipe().cmd("GET").arg(&key).cmd("HLEN").arg(&claims).query(conn)
                    })?;
                    if let Some(next) = next {
                        inventory.counters.push(CounterEntry {
                            counter: name.to_owned(),
                            next,
                            claims: count,
                        });
                    }
                }
                ('l', Some(lease)) => {
                    let (token, deadline): (Option<u64>, Option<u64>) =
                        self.call(|conn| redis::cmd("HMGET").arg(&key).arg("t").arg("d").query(conn))?;
                    if let (Some(token), Some(deadline)) = (token, deadline) {
                        if deadline > server_now {
                            let deadline_ms = local_now + (deadline - server_now);
                            inventory.leases.push(LeaseEntry {
                                lock: name.to_owned(),
                                key: lease.to_owned(),
                                token,
                                deadline_ms,
                            });
                        }
                    }
                }
                ('m', Some(stream)) => {
                    let (marked, expires): (Option<u32>, Option<u64>) =
                        self.call(|conn| redis::cmd("HMGET").arg(&key).arg("n").arg("e").query(conn))?;
                    if let (Some(marked), Some(expires)) = (marked, expires) {
                        if expires > server_now {
                            inventory.streams.push(StreamEntry {
                                guard: name.to_owned(),
                                stream: stream.to_owned(),
                                marked,
                                expires_at_ms: local_now + (expires - server_now),
                            });
                        }
                    }
                }
                ('r', Some(record)) => {
                    // A tombstone has a fence and no version: no record.
                    let version: Option<u64> =
                        self.call(|conn| redis::cmd("HGET").arg(&key).arg("ver").query(conn))?;
                    if let Some(version) = version {
                        inventory.records.push(RecordEntry {
                            space: name.to_owned(),
                            key: record.to_owned(),
                            version,
                        });
                    }
                }
                _ => {}
            }
        }
        inventory.sort();
        Ok(inventory)
    }
}
