//! [`crate::Counter`] as futures.

use std::fmt;
use std::sync::Arc;

use super::SharedStore;
use crate::counter::CounterStatsInner;
use crate::error::Result;
use crate::store::Claim;
use crate::validate;
use crate::CounterStats;

/// [`crate::Counter`] whose operations are futures: the same sequence, methods and errors.
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> racefree::Result<()> {
/// let store = racefree::aio::open("memory://").await?;
/// let executions = racefree::aio::Counter::new(&store, "task:42")?;
/// assert_eq!(executions.claim("exec-a").await?.index, 0);
/// assert_eq!(executions.next().await?, 1);
/// assert!(!executions.claim("exec-a").await?.is_new);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "tokio"))] fn main() {} // the example needs tokio's runtime
/// ```
pub struct Counter {
    store: SharedStore,
    key: String,
    stats: Arc<CounterStatsInner>,
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Counter {
    /// As [`crate::Counter::new`].
    ///
    /// # Errors
    /// [`Error::InvalidKey`](crate::Error::InvalidKey) for an empty or oversized key.
    pub fn new(store: &SharedStore, key: &str) -> Result<Self> {
        validate::key("counter key", key)?;
        let stats = Arc::new(CounterStatsInner::new(store.backend()));
        Ok(Self { store: Arc::clone(store), key: key.to_owned(), stats })
    }

    /// The counter's key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// As [`crate::Counter::next`].
    ///
    /// # Errors
    /// As [`crate::Counter::next`].
    ///
    /// # Cancel safety
    /// Not cancel-safe: dropped after its request was sent, it may have taken an index nobody
    /// sees. Use [`claim`](Counter::claim) where no index may be lost.
    pub async fn next(&self) -> Result<u64> {
        let next = self.store.counter_next(&self.key).await;
        #[cfg(feature = "metrics")]
        self.stats.count_next(&next);
        next
    }

    /// As [`crate::Counter::claim`].
    ///
    /// # Errors
    /// As [`crate::Counter::claim`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a claim dropped after it applied is read back by claiming the same id again.
    pub async fn claim(&self, execution_id: &str) -> Result<Claim> {
        validate::key("execution id", execution_id)?;
        self.stats.count(self.store.counter_claim(&self.key, execution_id).await)
    }

    /// As [`crate::Counter::index_of`].
    ///
    /// # Errors
    /// As [`crate::Counter::index_of`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn index_of(&self, execution_id: &str) -> Result<Option<u64>> {
        validate::key("execution id", execution_id)?;
        self.store.counter_index_of(&self.key, execution_id).await
    }

    /// As [`crate::Counter::peek`].
    ///
    /// # Errors
    /// Backend failures.
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn peek(&self) -> Result<u64> {
        self.store.counter_peek(&self.key).await
    }

    /// As [`crate::Counter::set`].
    ///
    /// # Errors
    /// As [`crate::Counter::set`].
    ///
    /// # Cancel safety
    /// Cancel-safe: setting again sets the same value.
    pub async fn set(&self, next: u64) -> Result<()> {
        self.store.counter_set(&self.key, next).await
    }

    /// As [`crate::Counter::reset`].
    ///
    /// # Errors
    /// Backend failures.
    ///
    /// # Cancel safety
    /// Cancel-safe: resetting again changes nothing more.
    pub async fn reset(&self) -> Result<()> {
        self.store.counter_reset(&self.key).await
    }

    /// What this handle has done.
    #[must_use]
    pub fn stats(&self) -> CounterStats {
        self.stats.snapshot()
    }
}
