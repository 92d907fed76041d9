//! The stores a JavaScript host reaches with its own client (`HostedStore`: Redis through ioredis
//! or node-redis, `hosted_redis`; PostgreSQL through a `pg` pool, `hosted_postgres`), and the
//! async primitives (`AsyncCounter`, `AsyncEventGuard`, `AsyncStartLock`, `AsyncRecords`)
//! running the core's `racefree::aio` on them, each call a `Promise`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use js_sys::{Array, Function, Promise};
use racefree::aio;
use racefree::store::postgres::HostedPostgresStore;
use racefree::store::redis::protocol::Replication;
use racefree::store::redis::HostedRedisStore;
use wasm_bindgen::prelude::*;

use crate::convert::{self, to_number};
use crate::errors::IntoJs;

/// A value that is only ever touched on the one thread wasm32-unknown-unknown has.
pub(crate) struct OneThread<T>(pub(crate) T);

// SAFETY: this crate is built for wasm32-unknown-unknown without the atomics feature, where there
// is one thread: nothing can reach the value from another.
#[allow(unsafe_code)]
unsafe impl<T> Send for OneThread<T> {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<T> Sync for OneThread<T> {}

impl<F: Future> Future for OneThread<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: a projection to the only field; it is never moved out of the pinned wrapper.
        #[allow(unsafe_code)]
        unsafe { self.map_unchecked_mut(|wrapped| &mut wrapped.0) }.poll(cx)
    }
}

/// A store reached through the host's own client: Redis (`redis`) or PostgreSQL (`postgres`).
#[wasm_bindgen]
pub struct HostedStore {
    inner: aio::SharedStore,
}

/// The clock of a hosted store: `Date.now()`, or a function reading a `ManualClock` (tests),
/// which then judges deadlines instead of the server.
fn clock(manual_now_ms: Option<Function>) -> racefree::SharedClock {
    match manual_now_ms {
        Some(now_ms) => Arc::new(crate::clock::FunctionClock(OneThread(now_ms))),
        None => Arc::new(crate::clock::DateClock),
    }
}

/// `replicas` and `replicasTimeoutMs` (each `undefined` when not given) as what every write waits
/// for: nothing for 0 replicas.
fn replication(replicas: &JsValue, timeout_ms: &JsValue) -> Result<Option<Replication>, JsValue> {
    let replicas = convert::optional_unsigned("replicas", replicas)?.unwrap_or(0);
    let replicas = u32::try_from(replicas)
        .map_err(|_| convert::invalid(format!("replicas must be at most {}, got {replicas}", u32::MAX)))?;
    // Not given: the default of every store.
    let timeout_ms = convert::optional_unsigned("replicasTimeoutMs", timeout_ms)?
        .unwrap_or(Replication::DEFAULT_TIMEOUT_MS);
    if timeout_ms == 0 {
        // `WAIT`'s 0 waits forever.
        return Err(convert::invalid("replicasTimeoutMs must be at least 1, got 0".to_owned()));
    }
    Ok((replicas > 0).then_some(Replication { replicas, timeout_ms }))
}

#[wasm_bindgen]
impl HostedStore {
    /// The Redis store in `namespace` over `send` (see `hosted_redis::JsTransport`); on a
    /// cluster, `nodes` lists the primaries a walk visits. With `replicas` above 0, every write
    /// waits (`WAIT`) until that many replicas acknowledged it, for up to `replicasTimeoutMs`
    /// (see the core's `Replication` for what a write fewer acknowledged returns).
    pub fn redis(
        send: Function,
        namespace: &str,
        manual_now_ms: Option<Function>,
        nodes: Option<Function>,
        replicas: JsValue,
        replicas_timeout_ms: JsValue,
    ) -> Result<HostedStore, JsValue> {
        let replication = replication(&replicas, &replicas_timeout_ms)?;
        let transport =
            crate::hosted_redis::JsTransport { send: OneThread(send), nodes: nodes.map(OneThread) };
        let store = HostedRedisStore::new(transport, namespace, clock(manual_now_ms))
            .js()?
            .with_replication(replication);
        Ok(HostedStore { inner: Arc::new(store) })
    }

    /// The PostgreSQL store in `namespace` over `run` (see `hosted_postgres::JsTransport`),
    /// once racefree's schema is checked (and created when missing, if `createSchema`): a
    /// `Promise` of the `HostedStore`.
    pub fn postgres(
        run: Function,
        namespace: String,
        manual_now_ms: Option<Function>,
        create_schema: bool,
    ) -> Promise {
        let transport = crate::hosted_postgres::JsTransport { run: OneThread(run) };
        let clock = clock(manual_now_ms);
        promise(async move {
            let store = HostedPostgresStore::new(transport, &namespace, clock, create_schema).await.js()?;
            Ok(HostedStore { inner: Arc::new(store) }.into())
        })
    }

    /// The namespace that prefixes every key.
    #[wasm_bindgen(getter)]
    pub fn namespace(&self) -> String {
        self.inner.namespace().to_owned()
    }

    /// `[entries, expiredSwept]`: what the namespace holds, and what this handle swept.
    pub fn stats(&self) -> Promise {
        let store = Arc::clone(&self.inner);
        promise(async move {
            let stats = store.stats().await.js()?;
            Ok(Array::of2(&number("entries", stats.entries)?, &number("expired", stats.expired_swept)?)
                .into())
        })
    }

    /// Removes every expired lease and mark now; resolves to how many.
    pub fn sweep(&self) -> Promise {
        let store = Arc::clone(&self.inner);
        promise(async move { number("count", store.sweep().await.js()?) })
    }
}

/// A future of the core as a `Promise`: its value, or the core's error as racefree's error.
fn promise(work: impl Future<Output = std::result::Result<JsValue, JsValue>> + 'static) -> Promise {
    crate::host_tasks::promise(work)
}

fn number(what: &str, value: u64) -> std::result::Result<JsValue, JsValue> {
    to_number(what, value).map(JsValue::from_f64)
}

/// `Counter` on a hosted store: each call a `Promise`.
#[wasm_bindgen]
pub struct AsyncCounter {
    inner: Arc<aio::Counter>,
}

#[wasm_bindgen]
impl AsyncCounter {
    /// The counter named `key` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &HostedStore, key: &str) -> Result<AsyncCounter, JsValue> {
        Ok(AsyncCounter { inner: Arc::new(aio::Counter::new(&store.inner, key).js()?) })
    }

    /// The next index.
    pub fn next(&self) -> Promise {
        let counter = Arc::clone(&self.inner);
        promise(async move { number("index", counter.next().await.js()?) })
    }

    /// `[index, isNew]` of `executionId`'s claim.
    pub fn claim(&self, execution_id: String) -> Promise {
        let counter = Arc::clone(&self.inner);
        promise(async move {
            let claim = counter.claim(&execution_id).await.js()?;
            Ok(Array::of2(&number("index", claim.index)?, &JsValue::from_bool(claim.is_new)).into())
        })
    }

    /// The index `executionId` claimed, or `null`.
    #[wasm_bindgen(js_name = indexOf)]
    pub fn index_of(&self, execution_id: String) -> Promise {
        let counter = Arc::clone(&self.inner);
        promise(async move {
            match counter.index_of(&execution_id).await.js()? {
                Some(index) => number("index", index),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// The index the next call will return.
    pub fn peek(&self) -> Promise {
        let counter = Arc::clone(&self.inner);
        promise(async move { number("index", counter.peek().await.js()?) })
    }

    /// Sets the next index.
    pub fn set(&self, next: JsValue) -> Result<Promise, JsValue> {
        let (counter, next) = (Arc::clone(&self.inner), convert::unsigned("next", &next)?);
        Ok(promise(async move { counter.set(next).await.js().map(|()| JsValue::UNDEFINED) }))
    }

    /// Forgets the counter and its claims.
    pub fn reset(&self) -> Promise {
        let counter = Arc::clone(&self.inner);
        promise(async move { counter.reset().await.js().map(|()| JsValue::UNDEFINED) })
    }

    /// `[newClaims, repeatedClaims]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.inner.stats();
        vec![s.new_claims as f64, s.repeated_claims as f64]
    }
}

/// `EventGuard` on a hosted store: each call a `Promise`.
#[wasm_bindgen]
pub struct AsyncEventGuard {
    inner: Arc<aio::EventGuard>,
}

#[wasm_bindgen]
impl AsyncEventGuard {
    /// The guard `name` of `events` (in order) in `store`, marks kept `retentionMs`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        store: &HostedStore,
        name: &str,
        events: Vec<String>,
        retention_ms: Option<f64>,
    ) -> Result<AsyncEventGuard, JsValue> {
        let options = match retention_ms {
            Some(ms) => racefree::GuardOptions::retention(convert::millis("retention", ms)?),
            None => racefree::GuardOptions::default(),
        };
        Ok(AsyncEventGuard {
            inner: Arc::new(aio::EventGuard::with_options(&store.inner, name, &events, options).js()?),
        })
    }

    /// `true` for the first mark of `event` on `stream` (deliver it), `false` for a duplicate.
    pub fn mark(&self, stream: String, event: String) -> Promise {
        let guard = Arc::clone(&self.inner);
        promise(async move {
            Ok(JsValue::from_bool(guard.mark(&stream, &event).await.js()? == racefree::Mark::First))
        })
    }

    /// Whether `event` of `stream` is marked.
    #[wasm_bindgen(js_name = isMarked)]
    pub fn is_marked(&self, stream: String, event: String) -> Promise {
        let guard = Arc::clone(&self.inner);
        promise(async move { Ok(JsValue::from_bool(guard.is_marked(&stream, &event).await.js()?)) })
    }

    /// The latest event marked for `stream`, or `null`.
    #[wasm_bindgen(js_name = lastMarked)]
    pub fn last_marked(&self, stream: String) -> Promise {
        let guard = Arc::clone(&self.inner);
        promise(
            async move { Ok(guard.last_marked(&stream).await.js()?.map_or(JsValue::NULL, JsValue::from_str)) },
        )
    }

    /// Forgets `stream`'s marks; resolves to whether it had any.
    pub fn forget(&self, stream: String) -> Promise {
        let guard = Arc::clone(&self.inner);
        promise(async move { Ok(JsValue::from_bool(guard.forget(&stream).await.js()?)) })
    }

    /// `[delivered, duplicatesSuppressed, outOfOrder]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.inner.stats();
        vec![s.delivered as f64, s.duplicates_suppressed as f64, s.out_of_order as f64]
    }
}

/// `StartLock` on a hosted store: each call a `Promise`.
#[wasm_bindgen]
pub struct AsyncStartLock {
    inner: Arc<aio::StartLock>,
}

impl AsyncStartLock {
    /// The core's lock (for a keeper of its leases).
    pub(crate) fn core(&self) -> &Arc<aio::StartLock> {
        &self.inner
    }
}

#[wasm_bindgen]
impl AsyncStartLock {
    /// The lock `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &HostedStore, name: &str) -> Result<AsyncStartLock, JsValue> {
        Ok(AsyncStartLock { inner: Arc::new(aio::StartLock::new(&store.inner, name).js()?) })
    }

    /// `[token, deadlineMs]` of a lease on `key` for `ttlMs` if nobody holds one, else `null`:
    /// the layer's `Lease` keeps them and renews and releases by token (as on the memory store;
    /// a wasm object per lease would cost an allocation and a finalizer registration).
    #[wasm_bindgen(js_name = tryGrant)]
    pub fn try_grant(&self, key: String, ttl_ms: f64) -> Result<Promise, JsValue> {
        let (lock, ttl) = (Arc::clone(&self.inner), convert::millis("ttl", ttl_ms)?);
        Ok(promise(async move {
            Ok(match lock.try_grant(&key, ttl).await.js()? {
                Some(grant) => {
                    Array::of2(&number("token", grant.token)?, &number("deadline", grant.deadline_ms)?).into()
                }
                None => JsValue::NULL,
            })
        }))
    }

    /// Renews the lease `token` holds on `key` for `ttlMs`; resolves to its new deadline.
    #[wasm_bindgen(js_name = renewToken)]
    pub fn renew_token(&self, key: String, token: f64, ttl_ms: f64) -> Result<Promise, JsValue> {
        let (lock, ttl) = (Arc::clone(&self.inner), convert::millis("ttl", ttl_ms)?);
        let token = convert::unsigned_number("token", token)?;
        Ok(promise(async move { number("deadline", lock.renew_token(&key, token, ttl).await.js()?) }))
    }

    /// Releases the lease `token` holds on `key`.
    #[wasm_bindgen(js_name = releaseToken)]
    pub fn release_token(&self, key: String, token: f64) -> Result<Promise, JsValue> {
        let (lock, token) = (Arc::clone(&self.inner), convert::unsigned_number("token", token)?);
        Ok(promise(async move { lock.release_token(&key, token).await.js().map(|()| JsValue::UNDEFINED) }))
    }

    /// Whether somebody holds an unexpired lease on `key`.
    #[wasm_bindgen(js_name = isHeld)]
    pub fn is_held(&self, key: String) -> Promise {
        let lock = Arc::clone(&self.inner);
        promise(async move { Ok(JsValue::from_bool(lock.is_held(&key).await.js()?)) })
    }

    /// `[token, deadlineMs]` of the unexpired lease on `key`, or `null`.
    pub fn holder(&self, key: String) -> Promise {
        let lock = Arc::clone(&self.inner);
        promise(async move {
            Ok(match lock.holder(&key).await.js()? {
                Some(grant) => {
                    Array::of2(&number("token", grant.token)?, &number("deadline", grant.deadline_ms)?).into()
                }
                None => JsValue::NULL,
            })
        })
    }

    /// As the memory store's `statsRaw`.
    pub fn stats(&self) -> Vec<f64> {
        crate::convert::lock_stats(&self.inner.stats())
    }
}

/// `Records` on a hosted store: each call a `Promise`. Values cross as JSON text.
#[wasm_bindgen]
pub struct AsyncRecords {
    inner: Arc<aio::Records>,
}

#[wasm_bindgen]
impl AsyncRecords {
    /// The record space `name` in `store`.
    #[wasm_bindgen(constructor)]
    pub fn new(store: &HostedStore, name: &str) -> Result<AsyncRecords, JsValue> {
        Ok(AsyncRecords { inner: Arc::new(aio::Records::new(&store.inner, name).js()?) })
    }

    /// `[jsonText, version]` of the record, or `null`.
    pub fn get(&self, key: String) -> Promise {
        let records = Arc::clone(&self.inner);
        promise(async move {
            Ok(match records.get(&key).await.js()? {
                Some(found) => Array::of2(
                    &JsValue::from_str(&convert::json_text(&found.value)),
                    &number("version", found.version)?,
                )
                .into(),
                None => JsValue::NULL,
            })
        })
    }

    /// Writes `jsonText` (create-only without `expectedVersion`); resolves to the new version.
    pub fn put(
        &self,
        key: String,
        json_text: &str,
        expected_version: JsValue,
        fencing_token: JsValue,
    ) -> Result<Promise, JsValue> {
        let records = Arc::clone(&self.inner);
        let value = convert::parse_json(json_text)?;
        let expected = convert::optional_unsigned("expectedVersion", &expected_version)?;
        let token = convert::optional_unsigned("fencingToken", &fencing_token)?;
        Ok(promise(async move {
            let version = match token {
                Some(token) => records.put_fenced(&key, &value, expected, token).await,
                None => records.put(&key, &value, expected).await,
            };
            number("version", version.js()?)
        }))
    }

    /// Deletes the record (only at `expectedVersion`, when given); resolves to whether one was.
    pub fn delete(&self, key: String, expected_version: JsValue) -> Result<Promise, JsValue> {
        let records = Arc::clone(&self.inner);
        let expected = convert::optional_unsigned("expectedVersion", &expected_version)?;
        Ok(promise(async move { Ok(JsValue::from_bool(records.delete(&key, expected).await.js()?)) }))
    }

    /// `[writes, conflicts, retries, staleTokens]`.
    pub fn stats(&self) -> Vec<f64> {
        let s = self.inner.stats();
        vec![s.writes as f64, s.conflicts as f64, s.retries as f64, s.stale_tokens as f64]
    }
}

/// The sleeps between an update's attempts on a hosted store, drawn one at a time (any
/// `maxAttempts` costs nothing up front): `next()` is the next one in milliseconds, or -1 when
/// the attempts are used up.
#[wasm_bindgen]
pub struct UpdateDelays {
    inner: std::iter::Take<racefree::Backoff>,
}

#[wasm_bindgen]
impl UpdateDelays {
    /// The delays of an update of at most `maxAttempts` attempts.
    #[wasm_bindgen(constructor)]
    pub fn new(max_attempts: f64) -> Result<UpdateDelays, JsValue> {
        let max_attempts = convert::attempts(convert::unsigned_number("maxAttempts", max_attempts)?)?;
        let options = racefree::UpdateOptions::default().with_max_attempts(max_attempts);
        Ok(UpdateDelays { inner: options.retry_delays().js()? })
    }

    /// The next sleep in milliseconds, or -1 when no attempt is left.
    #[allow(clippy::should_implement_trait)] // JavaScript's name for it; not a Rust iterator
    pub fn next(&mut self) -> f64 {
        self.inner.next().map_or(-1.0, |delay| delay.as_secs_f64() * 1000.0)
    }
}
