//! The Redis store: many machines share one server; every operation is one command or one Lua
//! script (loaded once, called by its hash with `EVALSHA`).
//!
//! Two parts: [`protocol`], the requests and the decoding of their replies as data (no I/O, no
//! client crate, feature `redis-protocol`, builds for wasm32), and the engine that carries them:
//! [`RedisStore`], blocking, on a pool of redis-rs connections (feature `redis`), and
//! [`aio::RedisStore`](crate::aio::RedisStore), on one multiplexed connection of the caller's
//! tokio runtime (features `redis` and `tokio`). The key layout
//! is described in [`protocol`].
//!
//! **Time.** Handed the wall clock ([`SystemClock`](crate::SystemClock)), deadlines are judged by
//! the server's own clock (`TIME` inside each script) and enforced by Redis itself through
//! `PEXPIRE`, so client clocks don't matter. Handed any other clock (a
//! [`ManualClock`](crate::ManualClock) in tests), scripts judge deadlines by that clock instead,
//! and expired keys stay until [`Store::sweep`](crate::Store::sweep) removes them (Redis' own
//! expiry would follow the real time, not that clock).

#[cfg(feature = "redis")]
mod blocking;
pub mod cluster;
#[cfg(feature = "redis")]
mod cluster_url;
#[cfg(feature = "aio")]
mod hosted;
#[cfg(all(feature = "redis", feature = "tokio"))]
mod nonblocking;
pub mod protocol;
#[cfg(feature = "redis")]
mod sentinel;

#[cfg(feature = "redis")]
pub(crate) use blocking::check_options;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use blocking::{RedisOptions, RedisStore};
#[cfg(feature = "aio")]
#[cfg_attr(docsrs, doc(cfg(feature = "aio")))]
pub use hosted::{HostedRedisStore, Transport};
#[cfg(all(feature = "redis", feature = "tokio"))]
#[doc(hidden)] // Documented as `racefree::aio::RedisStore`.
pub use nonblocking::{AsyncRedisStore, RedisRsConnection};
