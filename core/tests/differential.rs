//! Differential testing: random sequences of store operations (and clock moves) run against every
//! backend and against a plain reference model written from the `Store` trait's contract; every
//! result must agree. proptest shrinks a disagreement to a minimal sequence.
//!
//! The test script runs a short campaign. A long one (≥ 10^6 operations per backend):
//!
//! ```sh
//! RACEFREE_FUZZ_CASES=10000 cargo test -p racefree --release --all-features --test differential
//! ```
//! (10,000 cases of 1 to 200 operations, about 100 on average: ~10^6 operations per backend.)

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use racefree::{Clock, Error, ManualClock, MarkOutcome, SharedClock, SharedStore, Store, LAG_BOUND_MS};
use serde_json::{json, Value};

const OPS_PER_CASE: usize = 200;

#[derive(Debug, Clone)]
enum FuzzOp {
    Next(u8),
    Claim(u8, u8),
    IndexOf(u8, u8),
    Peek(u8),
    Set(u8, u64),
    Reset(u8),
    Mark(u8, u32, u64),
    Marked(u8),
    Forget(u8),
    Grant(u8, u64),
    /// Renew with the n-th token granted so far (or a made-up one past the end).
    Renew(u8, usize, u64),
    Release(u8, usize),
    Holder(u8),
    Get(u8),
    Put(u8, i64, Option<u64>, Option<u64>),
    Delete(u8, Option<u64>),
    /// The read of a slow `update`: remembers the version it saw (none if absent).
    UpdateRead(u8),
    /// The write of that update, later, whatever ran between: a compare-and-swap on the version
    /// read (a create when the read found nothing).
    UpdateWrite(u8, i64),
    Advance(u64),
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), Just(10), Just(1_000), 1u64..100_000]
}

fn fuzz_op() -> impl Strategy<Value = FuzzOp> {
    let key = 0u8..3;
    let small = 0u64..6;
    prop_oneof![
        3 => key.clone().prop_map(FuzzOp::Next),
        3 => (key.clone(), 0u8..6).prop_map(|(k, id)| FuzzOp::Claim(k, id)),
        1 => (key.clone(), 0u8..6).prop_map(|(k, id)| FuzzOp::IndexOf(k, id)),
        1 => key.clone().prop_map(FuzzOp::Peek),
        1 => (key.clone(), prop_oneof![0u64..20, Just(u64::from(u32::MAX))]).prop_map(|(k, n)| FuzzOp::Set(k, n)),
        1 => key.clone().prop_map(FuzzOp::Reset),
        3 => (key.clone(), 0u32..4, ttl()).prop_map(|(k, p, r)| FuzzOp::Mark(k, p, r)),
        1 => key.clone().prop_map(FuzzOp::Marked),
        1 => key.clone().prop_map(FuzzOp::Forget),
        3 => (key.clone(), ttl()).prop_map(|(k, t)| FuzzOp::Grant(k, t)),
        2 => (key.clone(), 0usize..8, ttl()).prop_map(|(k, i, t)| FuzzOp::Renew(k, i, t)),
        2 => (key.clone(), 0usize..8).prop_map(|(k, i)| FuzzOp::Release(k, i)),
        1 => key.clone().prop_map(FuzzOp::Holder),
        2 => key.clone().prop_map(FuzzOp::Get),
        3 => (key.clone(), -5i64..5, proptest::option::of(small.clone()), proptest::option::of(small.clone()))
            .prop_map(|(k, v, e, t)| FuzzOp::Put(k, v, e, t)),
        2 => (key.clone(), proptest::option::of(small)).prop_map(|(k, e)| FuzzOp::Delete(k, e)),
        2 => key.clone().prop_map(FuzzOp::UpdateRead),
        2 => (key, -5i64..5).prop_map(|(k, v)| FuzzOp::UpdateWrite(k, v)),
        2 => prop_oneof![Just(1u64), Just(9), Just(1_000), 0u64..120_000].prop_map(FuzzOp::Advance),
    ]
}

/// An operation's outcome, comparable across implementations: the value, or the error code.
type Outcome = Result<String, &'static str>;

fn outcome<T: std::fmt::Debug>(result: Result<T, Error>) -> Outcome {
    result.map(|v| format!("{v:?}")).map_err(|e| e.code())
}

fn name(key: u8) -> String {
    format!("n{key}")
}

fn value(v: i64) -> Value {
    json!({ "v": v })
}

/// Tokens granted so far (the store's, or their ranks for the reference), to renew or release
/// with (a made-up one past the end).
fn token_at(tokens: &[u64], i: usize) -> u64 {
    tokens.get(i).copied().unwrap_or(1_000 + i as u64)
}

fn on_store(store: &dyn Store, clock: &ManualClock, op: &FuzzOp, tokens: &[u64]) -> Outcome {
    match *op {
        FuzzOp::Next(k) => outcome(store.counter_next(&name(k))),
        FuzzOp::Claim(k, id) => {
            outcome(store.counter_claim(&name(k), &format!("e{id}")).map(|c| (c.index, c.is_new)))
        }
        FuzzOp::IndexOf(k, id) => outcome(store.counter_index_of(&name(k), &format!("e{id}"))),
        FuzzOp::Peek(k) => outcome(store.counter_peek(&name(k))),
        FuzzOp::Set(k, n) => outcome(store.counter_set(&name(k), n)),
        FuzzOp::Reset(k) => outcome(store.counter_reset(&name(k))),
        FuzzOp::Mark(k, p, r) => outcome(store.guard_mark("g", &name(k), p, r)),
        FuzzOp::Marked(k) => outcome(store.guard_marked("g", &name(k))),
        FuzzOp::Forget(k) => outcome(store.guard_forget("g", &name(k))),
        FuzzOp::Grant(k, t) => {
            outcome(store.lease_try_grant("l", &name(k), t).map(|g| g.map(|g| (g.token, g.deadline_ms))))
        }
        FuzzOp::Renew(k, i, t) => outcome(store.lease_renew("l", &name(k), token_at(tokens, i), t)),
        FuzzOp::Release(k, i) => outcome(store.lease_release("l", &name(k), token_at(tokens, i))),
        FuzzOp::Holder(k) => {
            outcome(store.lease_holder("l", &name(k)).map(|g| g.map(|g| (g.token, g.deadline_ms))))
        }
        FuzzOp::Get(k) => outcome(store.record_get("r", &name(k)).map(|r| r.map(|r| (r.value, r.version)))),
        FuzzOp::Put(k, v, e, t) => outcome(store.record_put("r", &name(k), &value(v), e, t)),
        FuzzOp::Delete(k, e) => outcome(store.record_delete("r", &name(k), e)),
        FuzzOp::UpdateRead(k) => outcome(store.record_get("r", &name(k)).map(|r| r.map(|r| r.version))),
        FuzzOp::UpdateWrite(..) => unreachable!("run as the Put it stands for"),
        FuzzOp::Advance(ms) => {
            clock.advance(Duration::from_millis(ms));
            Ok(String::new())
        }
    }
}

/// The reference: the `Store` contract in plain maps, with no concern for concurrency.
#[derive(Default)]
struct Reference {
    now: u64,
    counters: HashMap<String, u64>,
    claims: HashMap<String, HashMap<String, u64>>,
    marks: HashMap<String, (u32, u64)>,
    leases: HashMap<String, (u64, u64)>,
    last_token: u64,
    /// Each key's value (none for a tombstone), version and fence.
    records: HashMap<String, (Option<Value>, u64, u64)>,
    /// The largest version the space has deleted: a new record starts above it.
    deleted_floor: u64,
}

impl Reference {
    fn live_lease(&self, key: &str) -> Option<(u64, u64)> {
        self.leases.get(key).copied().filter(|&(_, deadline)| deadline > self.now)
    }

    /// The live record's value, version and fence.
    fn live_record(&self, key: &str) -> Option<(Value, u64, u64)> {
        self.records.get(key).and_then(|(value, version, fence)| Some((value.clone()?, *version, *fence)))
    }

    fn live_marks(&self, key: &str) -> u32 {
        self.marks.get(key).filter(|&&(_, expires)| expires > self.now).map_or(0, |&(m, _)| m)
    }

    fn apply(&mut self, op: &FuzzOp, tokens: &[u64]) -> Outcome {
        let fmt = |v: &dyn std::fmt::Debug| Ok(format!("{v:?}"));
        match *op {
            FuzzOp::Next(k) => {
                let next = self.counters.entry(name(k)).or_insert(0);
                *next += 1;
                fmt(&(*next - 1))
            }
            FuzzOp::Claim(k, id) => {
                let claims = self.claims.entry(name(k)).or_default();
                if let Some(&index) = claims.get(&format!("e{id}")) {
                    return fmt(&(index, false));
                }
                let next = self.counters.entry(name(k)).or_insert(0);
                claims.insert(format!("e{id}"), *next);
                *next += 1;
                fmt(&(*next - 1, true))
            }
            FuzzOp::IndexOf(k, id) => {
                fmt(&self.claims.get(&name(k)).and_then(|c| c.get(&format!("e{id}")).copied()))
            }
            FuzzOp::Peek(k) => fmt(&self.counters.get(&name(k)).copied().unwrap_or(0)),
            FuzzOp::Set(k, n) => {
                self.counters.insert(name(k), n);
                fmt(&())
            }
            FuzzOp::Reset(k) => {
                self.counters.remove(&name(k));
                self.claims.remove(&name(k));
                fmt(&())
            }
            FuzzOp::Mark(k, position, retention) => {
                let marked = self.live_marks(&name(k));
                let result = match position.cmp(&marked) {
                    std::cmp::Ordering::Less => MarkOutcome::Duplicate,
                    std::cmp::Ordering::Greater => MarkOutcome::OutOfOrder { marked },
                    std::cmp::Ordering::Equal => {
                        self.marks.insert(name(k), (marked + 1, self.now + retention));
                        MarkOutcome::First
                    }
                };
                fmt(&result)
            }
            FuzzOp::Marked(k) => fmt(&self.live_marks(&name(k))),
            FuzzOp::Forget(k) => {
                let had = self.live_marks(&name(k)) > 0;
                self.marks.remove(&name(k));
                fmt(&had)
            }
            FuzzOp::Grant(k, ttl) => {
                if self.live_lease(&name(k)).is_some() {
                    return fmt(&None::<(u64, u64)>);
                }
                self.last_token += 1;
                self.leases.insert(name(k), (self.last_token, self.now + ttl));
                fmt(&Some((self.last_token, self.now + ttl)))
            }
            FuzzOp::Renew(k, i, ttl) => match self.live_lease(&name(k)) {
                Some((token, _)) if token == token_at(tokens, i) => {
                    self.leases.insert(name(k), (token, self.now + ttl));
                    fmt(&(self.now + ttl))
                }
                _ => Err("not_owner"),
            },
            FuzzOp::Release(k, i) => match self.live_lease(&name(k)) {
                Some((token, _)) if token == token_at(tokens, i) => {
                    self.leases.remove(&name(k));
                    fmt(&())
                }
                _ => Err("not_owner"),
            },
            FuzzOp::Holder(k) => fmt(&self.live_lease(&name(k))),
            FuzzOp::Get(k) => fmt(&self.live_record(&name(k)).map(|(v, version, _)| (v, version))),
            FuzzOp::UpdateRead(k) => fmt(&self.live_record(&name(k)).map(|(_, version, _)| version)),
            FuzzOp::Put(k, v, expected, token) => {
                let fence = self.records.get(&name(k)).map_or(0, |r| r.2);
                let live = self.live_record(&name(k)).map(|(_, version, _)| version);
                if token.is_some_and(|t| t < fence) {
                    return Err("stale_token");
                }
                if expected != live {
                    return Err("conflict");
                }
                let version = live.unwrap_or(self.deleted_floor) + 1;
                self.records.insert(name(k), (Some(value(v)), version, fence.max(token.unwrap_or(0))));
                fmt(&version)
            }
            FuzzOp::Delete(k, expected) => match (self.live_record(&name(k)), expected) {
                (current, Some(e)) if current.as_ref().map(|r| r.1) != Some(e) => Err("conflict"),
                (None, _) => fmt(&false),
                (Some((_, version, fence)), _) => {
                    self.deleted_floor = self.deleted_floor.max(version);
                    if fence > 0 {
                        self.records.insert(name(k), (None, version, fence));
                    } else {
                        self.records.remove(&name(k));
                    }
                    fmt(&true)
                }
            },
            FuzzOp::UpdateWrite(..) => unreachable!("run as the Put it stands for"),
            FuzzOp::Advance(ms) => {
                self.now += ms;
                Ok(String::new())
            }
        }
    }
}

/// A manual clock whose cheap reading ([`Clock::lagging_now_ms`]) trails the exact one by a
/// different amount on every read, from 0 to `max_lag` ms: the store must decide as if it read
/// the exact clock whenever `max_lag` is within [`LAG_BOUND_MS`].
#[derive(Debug)]
struct LaggingClock {
    exact: Arc<ManualClock>,
    max_lag: u64,
    reads: AtomicU64,
}

impl Clock for LaggingClock {
    fn now_ms(&self) -> u64 {
        self.exact.now_ms()
    }

    fn lagging_now_ms(&self) -> Option<u64> {
        let read = self.reads.fetch_add(1, Ordering::Relaxed);
        // Every lag from 0 to max_lag, in a scrambled order (the bound itself every few reads).
        let lag = match read % 4 {
            0 => self.max_lag,
            _ => (read.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % (self.max_lag + 1),
        };
        Some(self.exact.now_ms().saturating_sub(lag))
    }
}

/// Runs `ops` on a fresh store and on the reference; the first disagreement fails the case.
fn agree(open: &dyn Fn(SharedClock) -> SharedStore, ops: &[FuzzOp]) -> Result<(), TestCaseError> {
    agree_lagging(open, ops, 0)
}

/// [`agree`], with the store's clock lagging by up to `max_lag` ms in its cheap reading.
fn agree_lagging(
    open: &dyn Fn(SharedClock) -> SharedStore,
    ops: &[FuzzOp],
    max_lag: u64,
) -> Result<(), TestCaseError> {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = if max_lag == 0 {
        open(clock.clone())
    } else {
        open(Arc::new(LaggingClock { exact: clock.clone(), max_lag, reads: AtomicU64::new(0) }))
    };
    let mut reference = Reference { now: 1_000_000, ..Reference::default() };
    let mut tokens = Vec::new();
    // The version each key's last UpdateRead saw: what its UpdateWrite expects.
    let mut read_versions: HashMap<u8, Option<u64>> = HashMap::new();
    for (step, op) in ops.iter().enumerate() {
        let op = &match *op {
            FuzzOp::UpdateWrite(k, v) => FuzzOp::Put(k, v, read_versions.get(&k).copied().flatten(), None),
            ref other => other.clone(),
        };
        if let FuzzOp::UpdateRead(k) = *op {
            read_versions.insert(k, reference.live_record(&name(k)).map(|(_, version, _)| version));
        }
        // The reference numbers tokens 1, 2, 3…; a store may issue any strictly increasing ones
        // (Redis and PostgreSQL follow the server's clock), so its tokens are compared by rank.
        let ranks: Vec<u64> = (1..=tokens.len() as u64).collect();
        let expected = reference.apply(op, &ranks);
        let got = match (op, on_store(store.as_ref(), &clock, op, &tokens)) {
            (FuzzOp::Grant(..) | FuzzOp::Holder(..), Ok(text)) => {
                Ok(by_rank(&text, &mut tokens, matches!(op, FuzzOp::Grant(..))))
            }
            (_, got) => got,
        };
        prop_assert_eq!(&got, &expected, "step {} {:?}", step, op);
    }
    Ok(())
}

/// A grant's or holder's `Some((token, deadline))` with the token replaced by its rank among the
/// tokens granted so far; a granted token is added to them, and must be above all of them.
fn by_rank(text: &str, tokens: &mut Vec<u64>, granted: bool) -> String {
    let Some((token, rest)) = text.strip_prefix("Some((").and_then(|t| t.split_once(',')) else {
        return text.to_owned();
    };
    let token: u64 = token.parse().expect("token");
    if granted {
        if tokens.last().is_some_and(|&last| token <= last) {
            return format!("token {token} not above {tokens:?}");
        }
        tokens.push(token);
    }
    match tokens.iter().position(|&t| t == token) {
        Some(i) => format!("Some(({},{rest}", i + 1),
        None => format!("token {token} never granted"),
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("RACEFREE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn ops() -> impl Strategy<Value = Vec<FuzzOp>> {
    proptest::collection::vec(fuzz_op(), 1..=OPS_PER_CASE)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn memory_agrees_with_the_reference(ops in ops()) {
        agree(&|clock| Arc::new(racefree::MemoryStore::with_clock(clock)), &ops)?;
    }

    /// The memory store settles far deadlines by the clock's cheap reading: with that reading
    /// lagging by anything up to the bound, every result is still the exact clock's.
    #[test]
    fn memory_with_a_lagging_clock_agrees_with_the_reference(ops in ops()) {
        agree_lagging(&|clock| Arc::new(racefree::MemoryStore::with_clock(clock)), &ops, LAG_BOUND_MS)?;
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_agrees_with_the_reference(ops in ops()) {
        agree(&|clock| {
            let path = common::scratch_path("differential.db");
            Arc::new(racefree::SqliteStore::open(&path, clock, racefree::SqliteOptions::default()).expect("sqlite"))
        }, &ops)?;
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_agrees_with_the_reference(ops in ops()) {
        agree(&|clock| {
            let url = common::redis_server::RedisServer::shared().fresh_url();
            racefree::open_with_clock(&url, clock).expect("redis")
        }, &ops)?;
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_agrees_with_the_reference(ops in ops()) {
        agree(&|clock| {
            let url = common::postgres_server::PostgresServer::shared().fresh_url();
            racefree::open_with_clock(&url, clock).expect("postgres")
        }, &ops)?;
    }
}

/// The comparison can fail: the racy store (check-then-act in two steps, and a simplified
/// contract) disagrees with the reference on some sequence, which proptest finds and shrinks.
#[test]
fn a_deviating_store_is_caught() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result =
        runner.run(&ops(), |ops| agree(&|clock| Arc::new(common::racy::RacyStore::new(clock)), &ops));
    match result {
        Err(proptest::test_runner::TestError::Fail(why, minimal)) => {
            eprintln!("caught: {why}; minimal: {minimal:?}")
        }
        other => panic!("the racy store agreed with the reference: {other:?}"),
    }
}

/// The lagging-clock comparison can fail: a clock lagging past the bound it promises makes the
/// memory store keep expired leases and marks, and the reference catches it.
#[test]
fn a_clock_lagging_past_its_bound_is_caught() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let open = |clock| -> SharedStore { Arc::new(racefree::MemoryStore::with_clock(clock)) };
    match runner.run(&ops(), |ops| agree_lagging(&open, &ops, 20 * LAG_BOUND_MS)) {
        Err(proptest::test_runner::TestError::Fail(why, minimal)) => {
            eprintln!("caught: {why}; minimal: {minimal:?}")
        }
        other => panic!("a clock lagging 20 s past its bound went unnoticed: {other:?}"),
    }
}
