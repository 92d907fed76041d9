//! Store URLs: parsed and checked without touching a backend, then opened.

use std::sync::Arc;

use super::{MemoryStore, SharedStore};
#[cfg(feature = "postgres")]
use super::{PostgresOptions, PostgresStore, PostgresTls};
#[cfg(feature = "redis")]
use super::{RedisOptions, RedisStore};
#[cfg(feature = "sqlite")]
use super::{SqliteOptions, SqliteStore};
use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// A store URL, parsed and checked but not opened: what [`open`] opens.
///
/// [`StoreUrl::parse`] makes every check that needs no I/O (scheme, options, namespace, a
/// backend missing from the build), so a configuration can be validated where no server runs
/// (`manage.py check`, a CI job).
///
/// ```
/// use racefree::store::StoreUrl;
///
/// assert!(StoreUrl::parse("memory://?namespace=billing").is_ok());
/// assert_eq!(StoreUrl::parse("memory://?max_keys=many").unwrap_err().code(), "invalid_argument");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreUrl {
    /// `memory://`.
    Memory {
        /// The namespace.
        namespace: String,
        /// The `max_keys` bound, if given.
        max_keys: Option<usize>,
    },
    /// `sqlite:///abs/path.db`.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    Sqlite {
        /// The database file.
        path: std::path::PathBuf,
        /// Its options.
        options: SqliteOptions,
    },
    /// `redis://…`, `rediss://…`, `redis+sentinel://…`, `rediss+sentinel://…`, `redis+cluster://…`
    /// or `rediss+cluster://…`.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    Redis {
        /// The server part of the URL (without the racefree options).
        server: String,
        /// The options.
        options: RedisOptions,
    },
    /// `postgres://…` or `postgresql://…`.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    Postgres {
        /// The server part of the URL, with the client's own options (without racefree's).
        server: String,
        /// The options.
        options: PostgresOptions,
    },
}

impl StoreUrl {
    /// Parses and checks `url` (see [`open`] for the forms and options).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a malformed URL or option; [`Error::BackendUnavailable`]
    /// for a backend this build does not have.
    pub fn parse(url: &str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            Error::invalid_argument(format!(
                "store URL {url:?} has no scheme (expected memory://, sqlite:///path or redis://host)"
            ))
        })?;
        match scheme {
            "memory" => parse_memory(rest),
            #[cfg(feature = "sqlite")]
            "sqlite" => parse_sqlite(url, rest),
            #[cfg(not(feature = "sqlite"))]
            "sqlite" => Err(Error::unavailable("the sqlite backend is not in this build of racefree (feature `sqlite`)")),
            #[cfg(feature = "redis")]
            "redis" | "rediss" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster" | "rediss+cluster" => parse_redis(url),
            #[cfg(not(feature = "redis"))]
            "redis" | "rediss" | "redis+sentinel" | "rediss+sentinel" | "redis+cluster" | "rediss+cluster" => Err(Error::unavailable("the redis backend is not in this build of racefree (feature `redis`)")),
            #[cfg(feature = "postgres")]
            "postgres" | "postgresql" => parse_postgres(url),
            #[cfg(not(feature = "postgres"))]
            "postgres" | "postgresql" => Err(Error::unavailable("the postgres backend is not in this build of racefree (feature `postgres`)")),
            other => Err(Error::invalid_argument(format!(
                "unknown store scheme {other:?} (expected memory, sqlite, redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster, postgres or postgresql)"
            ))),
        }
    }

    /// Opens the store, judged by `clock`.
    ///
    /// # Errors
    /// As the backend's `open`: [`Error::BackendUnavailable`] when it cannot be reached,
    /// [`Error::Timeout`], [`Error::InvalidArgument`] for an unreadable certificate file.
    pub fn open(self, clock: SharedClock) -> Result<SharedStore> {
        match self {
            StoreUrl::Memory { namespace, max_keys } => {
                let mut builder = MemoryStore::builder().clock(clock).namespace(namespace);
                if let Some(max_keys) = max_keys {
                    builder = builder.max_keys(max_keys);
                }
                Ok(Arc::new(builder.build()?))
            }
            #[cfg(feature = "sqlite")]
            StoreUrl::Sqlite { path, options } => Ok(Arc::new(SqliteStore::open(&path, clock, options)?)),
            #[cfg(feature = "redis")]
            StoreUrl::Redis { server, options } => Ok(Arc::new(RedisStore::open(&server, clock, options)?)),
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres { server, options } => {
                Ok(Arc::new(PostgresStore::open(&server, clock, options)?))
            }
        }
    }
}

/// Opens a store from a URL.
///
/// - `memory://` — the in-process store (the default). Query options: `namespace=…`,
///   `max_keys=…`.
/// - `sqlite:///abs/path.db` — the embedded SQLite backend (feature `sqlite`). Query options:
///   `namespace=…`, `busy_timeout_ms=…` (default 5000), `synchronous=normal|full`.
/// - `redis://[user:password@]host[:port][/db]` — the Redis backend (feature `redis`). Query
///   options: `namespace=…`, `timeout_ms=…` (connect and request timeout, default 5000),
///   `require_fsync=true` (refuse a server without `appendonly yes` + `appendfsync always`),
///   `replicas=N` with `replicas_timeout_ms=…` (default 1000, below `timeout_ms`): each write
///   waits (`WAIT`) until N replicas acknowledged it, and fails when fewer did.
///   `rediss://` is TLS (rustls), verified against the system's trust store or `tls_ca=…`
///   (a PEM file); `tls_cert=…&tls_key=…` present a client certificate.
///   `redis+sentinel://[user:password@]host1[:port],host2[:port]/<master-name>[/db]` (sentinels'
///   port 26379 by default; `rediss+sentinel://` for TLS to the sentinels and the primary) finds
///   the primary through Redis Sentinel, and after a failover the new one, without reopening.
///   `redis+cluster://[user:password@]host1[:port],host2[:port]` (`rediss+cluster://` for TLS)
///   is a Redis Cluster: each request goes to its slot's primary, following `MOVED` and `ASK`,
///   and never sent again after a transport failure (see `racefree::store::redis::cluster`).
/// - `postgres://[user[:password]@]host[:port]/db` (or `postgresql://`) — the PostgreSQL backend
///   (feature `postgres`); a Unix socket is a percent-encoded path as host
///   (`postgres://app@%2Fvar%2Frun%2Fpostgresql/db`) or `?host=/var/run/postgresql`. Query
///   options: `namespace=…`, `timeout_ms=…` (connect and call timeout, default 5000),
///   `pool_size=…` (connections, default 8), `create_schema=false` (refuse a database without
///   racefree's tables instead of creating them), `prepare_statements=true` (prepare each
///   statement once per connection: faster, but only for a direct connection or a pooler that
///   tracks prepared statements, never PgBouncer's transaction pooling before 1.21), `sslmode=disable|verify-full` (default
///   `disable`; `verify-full` verifies the certificate and host name by rustls against the
///   system's trust store or `sslrootcert=…`, a PEM file); the client's own `host`, `port`,
///   `user`, `password`, `dbname`, `application_name`. Several hosts
///   (`postgres://h1:5432,h2:5432/db?target_session_attrs=read-write`) are tried in order for a
///   server that takes writes, on every new connection: after a failover, the first call that
///   meets the old primary (gone, or read-only) fails with a typed error and empties the pool,
///   and the next connects to the new one.
///
/// A backend missing from the build answers [`Error::BackendUnavailable`] rather than silently
/// falling back to memory. [`StoreUrl::parse`] checks a URL without opening it.
///
/// ```
/// let store = racefree::open("memory://?namespace=billing&max_keys=10000")?;
/// assert_eq!(store.namespace(), "billing");
/// # Ok::<(), racefree::Error>(())
/// ```
///
/// # Errors
/// [`Error::InvalidArgument`] for a malformed URL or option; [`Error::BackendUnavailable`] for a
/// backend this build does not have or cannot reach.
#[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
pub fn open(url: &str) -> Result<SharedStore> {
    open_with_clock(url, Arc::new(crate::clock::SystemClock))
}

/// [`open`] with an injected clock (the only form on `wasm32-unknown-unknown`).
///
/// # Errors
/// As [`open`].
pub fn open_with_clock(url: &str, clock: SharedClock) -> Result<SharedStore> {
    StoreUrl::parse(url)?.open(clock)
}

/// Splits `a=1&b=2` into pairs.
fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

fn parse_memory(rest: &str) -> Result<StoreUrl> {
    let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !host.is_empty() && host != "/" {
        return Err(Error::invalid_argument(format!("memory:// takes no host or path, got {host:?}")));
    }
    let (mut namespace, mut max_keys) = (String::new(), None);
    for (name, value) in query_pairs(query) {
        match name {
            "namespace" => value.clone_into(&mut namespace),
            "max_keys" => {
                let bound: usize = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::invalid_argument(format!("max_keys must be a positive integer, got {value:?}"))
                })?;
                max_keys = Some(bound);
            }
            other => return Err(Error::invalid_argument(format!("unknown memory:// option {other:?}"))),
        }
    }
    crate::validate::namespace(&namespace)?;
    Ok(StoreUrl::Memory { namespace, max_keys })
}

/// A `…_ms=` URL option as a duration.
#[cfg(any(feature = "sqlite", feature = "redis", feature = "postgres"))]
fn millis_option(name: &str, value: &str) -> Result<std::time::Duration> {
    let ms: u64 = value.parse().map_err(|_| {
        Error::invalid_argument(format!("{name} must be a number of milliseconds, got {value:?}"))
    })?;
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(feature = "sqlite")]
fn parse_sqlite(url: &str, rest: &str) -> Result<StoreUrl> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if !path.starts_with('/') || path.len() < 2 {
        return Err(Error::invalid_argument(format!(
            "sqlite URLs take an absolute file path, like sqlite:///var/lib/app/racefree.db; got {url:?}"
        )));
    }
    let mut options = SqliteOptions::default();
    for (name, value) in query_pairs(query) {
        match name {
            "namespace" => options.namespace = value.to_owned(),
            "busy_timeout_ms" => options.busy_timeout = millis_option(name, value)?,
            "synchronous" => {
                options.synchronous_full = match value {
                    "full" => true,
                    "normal" => false,
                    other => {
                        return Err(Error::invalid_argument(format!(
                            "synchronous must be normal or full, got {other:?}"
                        )))
                    }
                }
            }
            other => return Err(Error::invalid_argument(format!("unknown sqlite:// option {other:?}"))),
        }
    }
    crate::validate::namespace(&options.namespace)?;
    Ok(StoreUrl::Sqlite { path: path.into(), options })
}

#[cfg(feature = "redis")]
fn parse_redis(url: &str) -> Result<StoreUrl> {
    if url.contains('#') {
        return Err(Error::invalid_argument(format!(
            "redis URLs take no #fragment (to trust a private CA, use ?tls_ca=/path/ca.pem): {url:?}"
        )));
    }
    let (server, query) = url.split_once('?').unwrap_or((url, ""));
    let mut options = RedisOptions::default();
    let (mut tls_cert, mut tls_key) = (None, None);
    for (name, value) in query_pairs(query) {
        match name {
            "namespace" => options.namespace = value.to_owned(),
            "timeout_ms" => options.timeout = millis_option(name, value)?,
            "require_fsync" => {
                options.require_fsync = match value {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(Error::invalid_argument(format!(
                            "require_fsync must be true or false, got {other:?}"
                        )))
                    }
                }
            }
            "replicas" => {
                options.replicas = value.parse().map_err(|_| {
                    Error::invalid_argument(format!(
                        "replicas must be a whole number of replicas, got {value:?}"
                    ))
                })?;
            }
            "replicas_timeout_ms" => options.replicas_timeout = millis_option(name, value)?,
            "tls_ca" => options.tls_ca = Some(value.into()),
            "tls_cert" => tls_cert = Some(std::path::PathBuf::from(value)),
            "tls_key" => tls_key = Some(std::path::PathBuf::from(value)),
            other => return Err(Error::invalid_argument(format!("unknown redis:// option {other:?}"))),
        }
    }
    options.tls_client = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(Error::invalid_argument("tls_cert and tls_key go together")),
    };
    super::redis::check_options(server, &options)?;
    Ok(StoreUrl::Redis { server: server.to_owned(), options })
}

/// A `true|false` URL option.
#[cfg(feature = "postgres")]
fn bool_option(name: &str, value: &str) -> Result<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(Error::invalid_argument(format!("{name} must be true or false, got {other:?}"))),
    }
}

#[cfg(feature = "postgres")]
fn parse_postgres(url: &str) -> Result<StoreUrl> {
    if url.contains('#') {
        return Err(Error::invalid_argument(format!("postgres URLs take no #fragment: {url:?}")));
    }
    let (server, query) = url.split_once('?').unwrap_or((url, ""));
    let mut options = PostgresOptions::default();
    let (mut sslmode, mut root_cert) = ("disable", None);
    let mut passed = Vec::new();
    for (name, value) in query_pairs(query) {
        match name {
            "namespace" => options.namespace = value.to_owned(),
            "timeout_ms" => options.timeout = millis_option(name, value)?,
            "pool_size" => {
                options.pool_size = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::invalid_argument(format!("pool_size must be a positive integer, got {value:?}"))
                })?;
            }
            "create_schema" => options.create_schema = bool_option(name, value)?,
            "prepare_statements" => options.prepare_statements = bool_option(name, value)?,
            "sslmode" => sslmode = value,
            "sslrootcert" => root_cert = Some(std::path::PathBuf::from(value)),
            "host" | "port" | "user" | "password" | "dbname" | "application_name" => {
                passed.push(format!("{name}={value}"));
            }
            "target_session_attrs" => match value {
                "read-write" | "any" => passed.push(format!("{name}={value}")),
                other => {
                    return Err(Error::invalid_argument(format!(
                        "target_session_attrs must be read-write or any (the store writes), got {other:?}"
                    )))
                }
            },
            other => return Err(Error::invalid_argument(format!("unknown postgres:// option {other:?}"))),
        }
    }
    options.tls = match sslmode {
        "disable" => PostgresTls::Disable,
        "verify-full" => PostgresTls::VerifyFull { root_cert: root_cert.take() },
        "allow" | "prefer" | "require" | "verify-ca" => {
            return Err(Error::invalid_argument(format!(
                "sslmode={sslmode} would accept a server whose certificate or name is not verified; \
                 racefree takes sslmode=disable or sslmode=verify-full (with sslrootcert=/path/ca.pem \
                 for a private CA)"
            )))
        }
        other => {
            return Err(Error::invalid_argument(format!(
                "sslmode must be disable or verify-full, got {other:?}"
            )))
        }
    };
    if root_cert.is_some() {
        return Err(Error::invalid_argument("sslrootcert needs sslmode=verify-full"));
    }
    super::postgres::check_options(&options)?;
    let server = if passed.is_empty() { server.to_owned() } else { format!("{server}?{}", passed.join("&")) };
    server
        .parse::<tokio_postgres::Config>()
        .map_err(|e| Error::invalid_argument(format!("bad postgres URL {url:?}: {e}")))?;
    Ok(StoreUrl::Postgres { server, options })
}
