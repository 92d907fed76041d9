//! Versioned JSON records: compare-and-swap, batched update with retry, fenced writes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::metrics::{names, Labels, Tally};
use crate::store::{SharedStore, Versioned};
use crate::validate;

/// How [`Records::try_update_with`] retries and fences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpdateOptions {
    /// Attempts before giving up with [`Error::Conflict`] (default 5, like client-go's
    /// `RetryOnConflict`).
    pub max_attempts: u32,
    /// The first delay after a conflict (default 10 ms); it doubles with jitter from there.
    pub initial_backoff: Duration,
    /// A lease's fencing token to carry on the write (default none).
    pub fencing_token: Option<u64>,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        Self { max_attempts: 5, initial_backoff: Duration::from_millis(10), fencing_token: None }
    }
}

impl UpdateOptions {
    /// Default options with a fencing token.
    #[must_use]
    pub fn fenced(token: u64) -> Self {
        Self::default().with_fencing_token(token)
    }

    /// These options with `max_attempts` attempts.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// These options with the first backoff after a conflict set to `initial_backoff`.
    #[must_use]
    pub fn with_initial_backoff(mut self, initial_backoff: Duration) -> Self {
        self.initial_backoff = initial_backoff;
        self
    }

    /// These options carrying a lease's fencing token.
    #[must_use]
    pub fn with_fencing_token(mut self, token: u64) -> Self {
        self.fencing_token = Some(token);
        self
    }
    /// The sleeps between the attempts of an update with these options (`max_attempts - 1` of
    /// them, growing with jitter), for a host that runs the attempts itself (an update whose
    /// change is a coroutine). Drawn one at a time: any `max_attempts` costs nothing up front.
    ///
    /// # Errors
    /// `invalid_argument` when `max_attempts` is 0.
    pub fn retry_delays(&self) -> Result<std::iter::Take<crate::Backoff>> {
        check_attempts(self)?;
        Ok(update_delays(self).take(usize::try_from(self.max_attempts - 1).unwrap_or(usize::MAX)))
    }
}

/// A space of versioned JSON records with compare-and-swap writes.
///
/// It ends lost updates and conflict storms: [`update`](Records::update) applies several field
/// changes as one write, re-reading and retrying on conflict with bounded backoff; a write can
/// carry a lease's fencing token so that a paused former holder cannot overwrite newer work.
///
/// ```
/// use racefree::{MemoryStore, Records, SharedStore};
/// use serde_json::json;
/// use std::sync::Arc;
///
/// let store: SharedStore = Arc::new(MemoryStore::new());
/// let pods = Records::new(&store, "pods")?;
/// pods.put("web-1", &json!({"phase": "Pending"}), None)?;        // create-only
/// let updated = pods.update("web-1", |current| {
///     let mut status = current.cloned().unwrap_or_default();
///     status["phase"] = json!("Running");
///     status["ready"] = json!(true);                              // two fields, one write
///     status
/// })?;
/// assert_eq!(updated.version, 2);
/// # Ok::<(), racefree::Error>(())
/// ```
pub struct Records {
    store: SharedStore,
    name: String,
    stats: Arc<RecordStatsInner>,
}

#[derive(Debug)]
pub(crate) struct RecordStatsInner {
    labels: Labels,
    writes: Tally,
    conflicts: Tally,
    retries: Tally,
    stale_tokens: Tally,
}

impl RecordStatsInner {
    /// The counts of record space `name` on `backend`.
    pub(crate) fn new(name: &str, backend: &'static str) -> Self {
        let labels = Labels::new("records", Some(name), backend);
        Self {
            writes: Tally::new(&labels, names::RECORD_WRITES, Some("written")),
            conflicts: Tally::new(&labels, names::RECORD_WRITES, Some("conflict")),
            stale_tokens: Tally::new(&labels, names::RECORD_WRITES, Some("stale_token")),
            retries: Tally::new(&labels, names::RECORD_RETRIES, None),
            labels,
        }
    }

    /// Counts a write: a success, a conflict, a stale token, or another error.
    pub(crate) fn count_write(&self, outcome: Result<u64>) -> Result<u64> {
        match &outcome {
            Ok(_) => self.writes.add(1),
            Err(Error::Conflict { .. }) => self.conflicts.add(1),
            Err(Error::StaleToken { .. }) => self.stale_tokens.add(1),
            Err(err) => self.labels.error(err),
        }
        outcome
    }

    pub(crate) fn count_retry(&self) {
        self.retries.add(1);
    }

    pub(crate) fn snapshot(&self) -> RecordStats {
        RecordStats {
            writes: self.writes.get(),
            conflicts: self.conflicts.get(),
            retries: self.retries.get(),
            stale_tokens: self.stale_tokens.get(),
        }
    }
}

/// Checks what every update checks before its first read.
pub(crate) fn check_update(key: &str, options: &UpdateOptions) -> Result<()> {
    validate::key("record key", key)?;
    check_attempts(options)
}

fn check_attempts(options: &UpdateOptions) -> Result<()> {
    if options.max_attempts == 0 {
        return Err(Error::invalid_argument("max_attempts must be at least 1"));
    }
    Ok(())
}

/// The delays between an update's attempts.
pub(crate) fn update_delays(options: &UpdateOptions) -> crate::Backoff {
    crate::Backoff::new(options.initial_backoff, options.initial_backoff * 16)
}

/// What a [`Records`] handle has done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordStats {
    /// Successful writes.
    pub writes: u64,
    /// Writes refused with `conflict`.
    pub conflicts: u64,
    /// Update attempts repeated after a conflict.
    pub retries: u64,
    /// Writes refused with `stale_token`.
    pub stale_tokens: u64,
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Records {
    /// The record space named `name` in `store`.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an empty or oversized name.
    pub fn new(store: &SharedStore, name: &str) -> Result<Self> {
        validate::key("record space name", name)?;
        let stats = Arc::new(RecordStatsInner::new(name, store.backend()));
        Ok(Self { store: Arc::clone(store), name: name.to_owned(), stats })
    }

    /// The record and its version, if it exists.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for a bad key; backend failures.
    ///
    /// # Atomicity
    /// One read: value and version always belong together.
    pub fn get(&self, key: &str) -> Result<Option<Versioned>> {
        validate::key("record key", key)?;
        self.store.record_get(&self.name, key)
    }

    /// Writes `value`: create-only when `expected_version` is `None`, otherwise only if the
    /// record is still at that version. Returns the new version (1 on create).
    ///
    /// ```
    /// # let store: racefree::SharedStore = std::sync::Arc::new(racefree::MemoryStore::new());
    /// use serde_json::json;
    /// let r = racefree::Records::new(&store, "cfg")?;
    /// assert_eq!(r.put("a", &json!(1), None)?, 1);
    /// let err = r.put("a", &json!(2), Some(7)).unwrap_err();
    /// assert!(matches!(err, racefree::Error::Conflict { current_version: Some(1), .. }));
    /// # Ok::<(), racefree::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Conflict`] carrying the current version (`None` if the record does not exist);
    /// [`Error::InvalidKey`]; [`Error::CapacityExceeded`]; backend failures. A rejected write
    /// changes nothing.
    ///
    /// # Atomicity
    /// The version check and the write are one step: memory, one critical section; SQLite, one
    /// transaction; Redis, one Lua script; PostgreSQL, one server-side function. A key's
    /// versions never repeat, also across a delete (see [`Versioned::version`]).
    pub fn put(&self, key: &str, value: &Value, expected_version: Option<u64>) -> Result<u64> {
        self.write(key, value, expected_version, None)
    }

    /// [`put`](Records::put) carrying a lease's fencing token: refused with
    /// [`Error::StaleToken`] if the record has already accepted a write with a larger token.
    ///
    /// # Errors
    /// As [`put`](Records::put), and [`Error::StaleToken`].
    ///
    /// # Atomicity
    /// As [`put`](Records::put); the token check is part of the same step.
    pub fn put_fenced(
        &self,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        token: u64,
    ) -> Result<u64> {
        self.write(key, value, expected_version, Some(token))
    }

    fn write(&self, key: &str, value: &Value, expected: Option<u64>, token: Option<u64>) -> Result<u64> {
        validate::key("record key", key)?;
        self.stats.count_write(self.store.record_put(&self.name, key, value, expected, token))
    }

    /// Reads the record, applies `change` to its value (`None` if it does not exist) and writes
    /// the result if nobody wrote in between — otherwise re-reads and tries again, up to 5
    /// attempts with backoff from 10 ms.
    ///
    /// # Errors
    /// [`Error::Conflict`] when every attempt met a concurrent write; as [`put`](Records::put).
    ///
    /// # Atomicity
    /// Each attempt is one read and one compare-and-swap write; the write lands only if the
    /// version read is still current, so no update is ever lost.
    pub fn update<F>(&self, key: &str, mut change: F) -> Result<Versioned>
    where
        F: FnMut(Option<&Value>) -> Value,
    {
        self.try_update_with(key, &UpdateOptions::default(), |current| Ok::<_, Error>(change(current)))
    }

    /// [`update`](Records::update) with options, and a `change` that may fail: its error is
    /// returned as is and nothing is written.
    ///
    /// # Errors
    /// `change`'s error; [`Error::InvalidArgument`] for `max_attempts` 0; as
    /// [`update`](Records::update) and [`put_fenced`](Records::put_fenced).
    ///
    /// # Atomicity
    /// As [`update`](Records::update).
    pub fn try_update_with<F, E>(
        &self,
        key: &str,
        options: &UpdateOptions,
        mut change: F,
    ) -> Result<Versioned, E>
    where
        F: FnMut(Option<&Value>) -> Result<Value, E>,
        E: From<Error>,
    {
        self.try_update_record_with(key, options, |current| change(current.map(|c| &c.value)))
    }

    /// [`try_update_with`](Records::try_update_with) handing `change` the current record with
    /// its version (a binding caches what it made of each version: a version is never repeated
    /// for a key).
    ///
    /// # Errors
    /// As [`try_update_with`](Records::try_update_with).
    ///
    /// # Atomicity
    /// As [`update`](Records::update).
    pub fn try_update_record_with<F, E>(
        &self,
        key: &str,
        options: &UpdateOptions,
        mut change: F,
    ) -> Result<Versioned, E>
    where
        F: FnMut(Option<&Versioned>) -> Result<Value, E>,
        E: From<Error>,
    {
        check_update(key, options)?;
        let mut delays = update_delays(options);
        let mut attempt = 1;
        loop {
            let current = self.store.record_get(&self.name, key)?;
            let value = change(current.as_ref())?;
            let expected = current.as_ref().map(|c| c.version);
            match self.write(key, &value, expected, options.fencing_token) {
                Ok(version) => return Ok(Versioned { value, version }),
                Err(Error::Conflict { .. }) if attempt < options.max_attempts => {
                    attempt += 1;
                    self.stats.count_retry();
                    crate::pause(delays.delay());
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Deletes the record if it is at `expected_version` (any version when `None`); returns
    /// whether there was one.
    ///
    /// # Errors
    /// [`Error::Conflict`] when the version differs; [`Error::InvalidKey`]; backend failures.
    ///
    /// # Atomicity
    /// The version check and the delete are one step.
    pub fn delete(&self, key: &str, expected_version: Option<u64>) -> Result<bool> {
        validate::key("record key", key)?;
        self.store.record_delete(&self.name, key, expected_version)
    }

    /// What this handle has done.
    #[must_use]
    pub fn stats(&self) -> RecordStats {
        self.stats.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_are_drawn_one_at_a_time() {
        let options = UpdateOptions::default().with_max_attempts(3);
        assert_eq!(options.retry_delays().unwrap().count(), 2);
        // Any bound costs nothing up front.
        let mut many = UpdateOptions::default().with_max_attempts(u32::MAX).retry_delays().unwrap();
        assert!(many.next().is_some());
        assert_eq!(many.size_hint().1, Some(usize::try_from(u32::MAX - 2).unwrap()));
        assert!(UpdateOptions::default().with_max_attempts(0).retry_delays().is_err());
    }
}
