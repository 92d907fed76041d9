//! [`crate::Records`] as futures.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::SharedStore;
#[cfg(feature = "tokio")]
use crate::error::Error;
use crate::error::Result;
use crate::records::RecordStatsInner;
#[cfg(feature = "tokio")]
use crate::records::{check_update, update_delays};
use crate::store::Versioned;
use crate::validate;
use crate::RecordStats;
#[cfg(feature = "tokio")]
use crate::UpdateOptions;

/// [`crate::Records`] whose operations are futures: the same versions, methods and errors.
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> racefree::Result<()> {
/// use serde_json::json;
/// let store = racefree::aio::open("memory://").await?;
/// let pods = racefree::aio::Records::new(&store, "pods")?;
/// pods.put("web-1", &json!({"phase": "Pending"}), None).await?;
/// let updated = pods
///     .update("web-1", |current| {
///         let mut status = current.cloned().unwrap_or_default();
///         status["phase"] = json!("Running");
///         status
///     })
///     .await?;
/// assert_eq!(updated.version, 2);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "tokio"))] fn main() {} // the example needs tokio's runtime
/// ```
pub struct Records {
    store: SharedStore,
    name: String,
    stats: Arc<RecordStatsInner>,
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Records {
    /// As [`crate::Records::new`].
    ///
    /// # Errors
    /// As [`crate::Records::new`].
    pub fn new(store: &SharedStore, name: &str) -> Result<Self> {
        validate::key("record space name", name)?;
        let stats = Arc::new(RecordStatsInner::new(name, store.backend()));
        Ok(Self { store: Arc::clone(store), name: name.to_owned(), stats })
    }

    /// As [`crate::Records::get`].
    ///
    /// # Errors
    /// As [`crate::Records::get`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a read.
    pub async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate::key("record key", key)?;
        self.store.record_get(&self.name, key).await
    }

    /// As [`crate::Records::put`].
    ///
    /// # Errors
    /// As [`crate::Records::put`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a write dropped after it applied is seen by the next read (a new version);
    /// repeating it answers `conflict`, never writes twice.
    pub async fn put(&self, key: &str, value: &Value, expected_version: Option<u64>) -> Result<u64> {
        self.write(key, value, expected_version, None).await
    }

    /// As [`crate::Records::put_fenced`].
    ///
    /// # Errors
    /// As [`crate::Records::put_fenced`].
    ///
    /// # Cancel safety
    /// As [`put`](Records::put).
    pub async fn put_fenced(
        &self,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        token: u64,
    ) -> Result<u64> {
        self.write(key, value, expected_version, Some(token)).await
    }

    async fn write(
        &self,
        key: &str,
        value: &Value,
        expected: Option<u64>,
        token: Option<u64>,
    ) -> Result<u64> {
        validate::key("record key", key)?;
        self.stats.count_write(self.store.record_put(&self.name, key, value, expected, token).await)
    }

    /// As [`crate::Records::update`]: backoff by `tokio::time::sleep`.
    ///
    /// # Errors
    /// As [`crate::Records::update`].
    ///
    /// # Cancel safety
    /// As [`put`](Records::put): each attempt is a compare-and-swap, so a dropped update either
    /// landed whole on the version it read or not at all.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn update<F>(&self, key: &str, mut change: F) -> Result<Versioned>
    where
        F: FnMut(Option<&Value>) -> Value,
    {
        self.try_update_with(key, &UpdateOptions::default(), |current| Ok::<_, Error>(change(current))).await
    }

    /// As [`crate::Records::try_update_with`].
    ///
    /// # Errors
    /// As [`crate::Records::try_update_with`].
    ///
    /// # Cancel safety
    /// As [`update`](Records::update).
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub async fn try_update_with<F, E>(
        &self,
        key: &str,
        options: &UpdateOptions,
        mut change: F,
    ) -> Result<Versioned, E>
    where
        F: FnMut(Option<&Value>) -> Result<Value, E>,
        E: From<Error>,
    {
        check_update(key, options)?;
        let mut delays = update_delays(options);
        let mut attempt = 1;
        loop {
            let current = self.store.record_get(&self.name, key).await?;
            let value = change(current.as_ref().map(|c| &c.value))?;
            let expected = current.as_ref().map(|c| c.version);
            match self.write(key, &value, expected, options.fencing_token).await {
                Ok(version) => return Ok(Versioned { value, version }),
                Err(Error::Conflict { .. }) if attempt < options.max_attempts => {
                    attempt += 1;
                    self.stats.count_retry();
                    tokio::time::sleep(delays.delay()).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// As [`crate::Records::delete`].
    ///
    /// # Errors
    /// As [`crate::Records::delete`].
    ///
    /// # Cancel safety
    /// Cancel-safe: a delete dropped after it applied is seen by the next read.
    pub async fn delete(&self, key: &str, expected_version: Option<u64>) -> Result<bool> {
        validate::key("record key", key)?;
        self.store.record_delete(&self.name, key, expected_version).await
    }

    /// What this handle has done.
    #[must_use]
    pub fn stats(&self) -> RecordStats {
        self.stats.snapshot()
    }
}
