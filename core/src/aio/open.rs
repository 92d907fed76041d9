//! Opening an async store from a URL.

use std::sync::Arc;

use super::{from_blocking, lost_task, SharedStore};
use crate::clock::SharedClock;
use crate::error::Result;
use crate::store::StoreUrl;

/// Opens an async store from a URL: the URLs and options of [`crate::open`]. Redis and
/// PostgreSQL get their async stores ([`RedisStore`](super::RedisStore),
/// [`PostgresStore`](super::PostgresStore)); memory is called inline and SQLite on tokio's
/// blocking pool ([`from_blocking`]).
///
/// # Errors
/// As [`crate::open`].
///
/// # Cancel safety
/// As the store's own `open`: dropped, no store is returned and nothing is left half-made.
pub async fn open(url: &str) -> Result<SharedStore> {
    open_with_clock(url, Arc::new(crate::clock::SystemClock)).await
}

/// [`open`] with an injected clock.
///
/// # Errors
/// As [`open`].
///
/// # Cancel safety
/// As [`open`].
pub async fn open_with_clock(url: &str, clock: SharedClock) -> Result<SharedStore> {
    match StoreUrl::parse(url)? {
        #[cfg(feature = "redis")]
        StoreUrl::Redis { server, options } => {
            Ok(Arc::new(super::RedisStore::open(&server, clock, options).await?))
        }
        #[cfg(feature = "postgres")]
        StoreUrl::Postgres { server, options } => {
            Ok(Arc::new(super::PostgresStore::open(&server, clock, options).await?))
        }
        memory @ StoreUrl::Memory { .. } => Ok(from_blocking(memory.open(clock)?)),
        #[allow(unreachable_patterns)] // SQLite, when built: opening reads its file.
        other => {
            let store = tokio::task::spawn_blocking(move || other.open(clock))
                .await
                .unwrap_or_else(|err| Err(lost_task("opening a store", &err)))?;
            Ok(from_blocking(store))
        }
    }
}
