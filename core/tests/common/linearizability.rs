//! A linearizability checker for histories of store operations (Wing & Gong's search with Lowe's
//! memoization, as in Porcupine), partitioned per key, with sequential models of every primitive.
//!
//! A history is a list of [`Event`]s: an operation, what it returned, and when it was invoked and
//! when it returned (microseconds of the wall clock, shared by threads and processes of one
//! machine). An operation whose outcome is unknown (its process was killed, or the server went
//! away) has no return time: it may have taken effect at any point after its invocation, or not
//! at all. The history is linearizable when every partition has an order of its operations that
//! respects real time (an operation that returned before another was invoked comes first) and in
//! which every result is the one the sequential model gives.
//!
//! Time inside the models: a store judges a lease's expiry by its clock at the linearization
//! point, which lies somewhere in the operation's window. The lease model therefore keeps the
//! deadline as an interval and accepts a result if some point of the window explains it — sound
//! (a reported violation is real) though slightly permissive.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use racefree::{Error, MarkOutcome, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One store operation (the atomic steps of the `Store` trait).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    Next { counter: String },
    Claim { counter: String, id: String },
    IndexOf { counter: String, id: String },
    Mark { guard: String, stream: String, position: u32 },
    Grant { lock: String, key: String, ttl_ms: u64 },
    Renew { lock: String, key: String, token: u64, ttl_ms: u64 },
    Release { lock: String, key: String, token: u64 },
    Get { space: String, key: String },
    Put { space: String, key: String, value: i64, expected: Option<u64>, token: Option<u64> },
    Delete { space: String, key: String, expected: Option<u64> },
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ret {
    Index(u64),
    Claimed {
        index: u64,
        is_new: bool,
    },
    IndexOf(Option<u64>),
    First,
    Duplicate,
    OutOfOrder(u32),
    Granted(Option<u64>),
    Renewed,
    Released,
    NotOwner,
    Record(Option<(i64, u64)>),
    Version(u64),
    Conflict(Option<u64>),
    Stale(u64),
    Deleted(bool),
    /// Failed with a retryable error or never returned: it may or may not have taken effect.
    Unknown,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub op: Op,
    pub ret: Ret,
    pub invoked_us: u64,
    /// `None` when the outcome is unknown.
    pub returned_us: Option<u64>,
}

pub fn now_us() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_micros())
        .unwrap_or(u64::MAX)
}

/// Runs `op` on `store` and records it. A retryable failure (`backend_unavailable`, `timeout`)
/// is an unknown outcome; any other error is a bug in the workload and panics.
pub fn run(store: &dyn Store, op: Op) -> Event {
    let invoked_us = now_us();
    let ret = apply(store, &op);
    let returned_us = (ret != Ret::Unknown).then(now_us);
    Event { op, ret, invoked_us, returned_us }
}

fn apply(store: &dyn Store, op: &Op) -> Ret {
    let result = match op {
        Op::Next { counter } => store.counter_next(counter).map(Ret::Index),
        Op::Claim { counter, id } => {
            store.counter_claim(counter, id).map(|c| Ret::Claimed { index: c.index, is_new: c.is_new })
        }
        Op::IndexOf { counter, id } => store.counter_index_of(counter, id).map(Ret::IndexOf),
        Op::Mark { guard, stream, position } => {
            store.guard_mark(guard, stream, *position, 3_600_000).map(|outcome| match outcome {
                MarkOutcome::First => Ret::First,
                MarkOutcome::Duplicate => Ret::Duplicate,
                MarkOutcome::OutOfOrder { marked } => Ret::OutOfOrder(marked),
            })
        }
        Op::Grant { lock, key, ttl_ms } => {
            store.lease_try_grant(lock, key, *ttl_ms).map(|g| Ret::Granted(g.map(|g| g.token)))
        }
        Op::Renew { lock, key, token, ttl_ms } => {
            store.lease_renew(lock, key, *token, *ttl_ms).map(|_| Ret::Renewed)
        }
        Op::Release { lock, key, token } => store.lease_release(lock, key, *token).map(|()| Ret::Released),
        Op::Get { space, key } => store
            .record_get(space, key)
            .map(|r| Ret::Record(r.map(|v| (v.value.as_i64().expect("an integer record"), v.version)))),
        Op::Put { space, key, value, expected, token } => {
            store.record_put(space, key, &json!(value), *expected, *token).map(Ret::Version)
        }
        Op::Delete { space, key, expected } => store.record_delete(space, key, *expected).map(Ret::Deleted),
    };
    match result {
        Ok(ret) => ret,
        Err(Error::NotOwner { .. }) => Ret::NotOwner,
        Err(Error::Conflict { current_version, .. }) => Ret::Conflict(current_version),
        Err(Error::StaleToken { latest, .. }) => Ret::Stale(latest),
        Err(err) if err.is_retryable() => Ret::Unknown,
        Err(err) => panic!("{op:?} failed: {err}"),
    }
}

// ---- the workload ----

/// A small deterministic generator (no RNG dependency).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// One client's random mix of operations over few keys (so they collide), using what it learned
/// from earlier results: the tokens it holds, the record versions it saw.
pub struct Client {
    rng: Rng,
    name: u64,
    held: Vec<(String, u64)>,
    versions: HashMap<String, u64>,
    /// A slow update under way: the key and version its read saw; its write comes some
    /// operations later (this client's and others'), whatever ran in between.
    slow_update: Option<(String, u64)>,
    tokens_seen: u64,
    /// Lease TTLs to draw from: short ones expire during the run.
    pub ttls_ms: Vec<u64>,
    /// Only operations of this primitive (`"counter"`, `"guard"`, `"lock"`, `"record"`), or all.
    pub only: Option<&'static str>,
}

impl Client {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            name: seed,
            held: Vec::new(),
            versions: HashMap::new(),
            slow_update: None,
            tokens_seen: 0,
            ttls_ms: vec![2, 15, 60_000],
            only: None,
        }
    }

    pub fn next_op(&mut self) -> Op {
        loop {
            let op = self.any_op();
            if self.only.is_none_or(|only| partition_of(&op).starts_with(only)) {
                return op;
            }
        }
    }

    fn any_op(&mut self) -> Op {
        let r = &mut self.rng;
        let counter = format!("c{}", r.below(2));
        let key = format!("k{}", r.below(3));
        let ttl_ms = self.ttls_ms[r.below(self.ttls_ms.len() as u64) as usize];
        match r.below(20) {
            0..=2 => Op::Next { counter },
            3..=4 => Op::Claim { counter, id: format!("e{}", r.below(40)) },
            5 => Op::IndexOf { counter, id: format!("e{}", r.below(40)) },
            6..=7 => Op::Mark {
                guard: "g".into(),
                stream: format!("s{}", r.below(6)),
                position: r.below(3) as u32,
            },
            8..=10 => Op::Grant { lock: "l".into(), key, ttl_ms },
            11..=12 if !self.held.is_empty() => {
                let (key, token) = self.held.swap_remove(r.below(self.held.len() as u64) as usize);
                if r.below(2) == 0 {
                    Op::Release { lock: "l".into(), key, token }
                } else {
                    self.held.push((key.clone(), token));
                    Op::Renew { lock: "l".into(), key, token, ttl_ms }
                }
            }
            11..=13 => Op::Get { space: "r".into(), key },
            14..=15 if self.slow_update.is_some() => {
                let (key, version) = self.slow_update.take().expect("checked");
                let value = (self.name * 1_000_000 + r.below(1_000_000)) as i64;
                Op::Put { space: "r".into(), key, value, expected: Some(version), token: None }
            }
            14..=17 => {
                let expected = match r.below(4) {
                    0 => None,
                    _ => Some(self.versions.get(&key).copied().unwrap_or(1) + r.below(2)),
                };
                let token = (r.below(3) == 0).then(|| self.tokens_seen.saturating_sub(r.below(3)));
                Op::Put {
                    space: "r".into(),
                    key,
                    value: (self.name * 1_000_000 + r.below(1_000_000)) as i64,
                    expected,
                    token,
                }
            }
            _ => Op::Delete {
                space: "r".into(),
                expected: (r.below(2) == 0).then(|| self.versions.get(&key).copied().unwrap_or(1)),
                key,
            },
        }
    }

    /// Learns from a result.
    pub fn observe(&mut self, event: &Event) {
        match (&event.op, &event.ret) {
            (Op::Grant { key, .. }, Ret::Granted(Some(token))) => {
                self.held.push((key.clone(), *token));
                self.tokens_seen = self.tokens_seen.max(*token);
            }
            (Op::Get { key, .. }, Ret::Record(Some((_, v)))) => {
                self.versions.insert(key.clone(), *v);
                if self.slow_update.is_none() && self.rng.below(2) == 0 {
                    self.slow_update = Some((key.clone(), *v));
                }
            }
            (Op::Put { key, .. }, Ret::Version(v) | Ret::Conflict(Some(v))) => {
                self.versions.insert(key.clone(), *v);
            }
            _ => {}
        }
    }

    /// Runs `ops` operations on `store`, passing each event to `record` as it completes.
    pub fn drive(&mut self, store: &dyn Store, ops: usize, mut record: impl FnMut(&Event)) -> Vec<Event> {
        (0..ops)
            .map(|_| {
                let event = run(store, self.next_op());
                self.observe(&event);
                record(&event);
                event
            })
            .collect()
    }
}

// ---- the models ----

fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// The state of one partition's object.
#[derive(Debug, Clone)]
enum State {
    Counter {
        next: u64,
        claims: HashMap<String, u64>,
        claims_hash: u64,
    },
    Guard {
        marked: u32,
    },
    /// The holder's token and deadline interval (ms), and the largest token granted.
    Lease {
        holder: Option<(u64, u64, u64)>,
        last_token: u64,
    },
    /// A record space: each key's value (none for a tombstone), version and fence, and the
    /// largest version the space has deleted (the floor new records start above).
    Records {
        records: BTreeMap<String, (Option<i64>, u64, u64)>,
        floor: u64,
    },
}

/// How to undo one step.
enum Undo {
    Nothing,
    Claimed(String, u64),
    Restore(State),
}

impl State {
    fn for_op(op: &Op) -> Self {
        match op {
            Op::Next { .. } | Op::Claim { .. } | Op::IndexOf { .. } => {
                Self::Counter { next: 0, claims: HashMap::new(), claims_hash: 0 }
            }
            Op::Mark { .. } => Self::Guard { marked: 0 },
            Op::Grant { .. } | Op::Renew { .. } | Op::Release { .. } => {
                Self::Lease { holder: None, last_token: 0 }
            }
            Op::Get { .. } | Op::Put { .. } | Op::Delete { .. } => {
                Self::Records { records: BTreeMap::new(), floor: 0 }
            }
        }
    }

    fn hash(&self) -> u64 {
        match self {
            Self::Counter { next, claims_hash, .. } => hash_of(&(0u8, next, claims_hash)),
            Self::Guard { marked } => hash_of(&(1u8, marked)),
            Self::Lease { holder, last_token } => hash_of(&(2u8, holder, last_token)),
            Self::Records { records, floor } => hash_of(&(3u8, records, floor)),
        }
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Nothing => {}
            Undo::Claimed(id, index) => {
                if let Self::Counter { next, claims, claims_hash } = self {
                    claims.remove(&id);
                    *claims_hash ^= hash_of(&(&id, index));
                    *next -= 1;
                }
            }
            Undo::Restore(state) => *self = state,
        }
    }

    /// Applies `event` if the model allows its result at some point of its window; returns how
    /// to undo it, or `None` when the result is impossible here. An operation of unknown outcome
    /// is applied only where it changes the state: "it had no effect" is the search skipping it.
    fn step(&mut self, event: &Event) -> Option<Undo> {
        let undo = self.step_inner(event)?;
        if event.ret == Ret::Unknown && matches!(undo, Undo::Nothing) {
            return None;
        }
        Some(undo)
    }

    fn step_inner(&mut self, event: &Event) -> Option<Undo> {
        let unknown = event.ret == Ret::Unknown;
        // The store's clock at the linearization point lies in [from_ms, to_ms].
        let from_ms = event.invoked_us / 1000;
        let to_ms = event.returned_us.map_or(u64::MAX, |us| us / 1000 + 1);
        let saved = self.clone();
        match (self, &event.op, &event.ret) {
            (Self::Counter { next, .. }, Op::Next { .. }, ret) => {
                if !unknown && *ret != Ret::Index(*next) {
                    return None;
                }
                *next += 1;
                Some(Undo::Restore(saved))
            }
            (Self::Counter { next, claims, claims_hash }, Op::Claim { id, .. }, ret) => {
                if let Some(&index) = claims.get(id) {
                    return (unknown || *ret == Ret::Claimed { index, is_new: false })
                        .then_some(Undo::Nothing);
                }
                if !unknown && *ret != (Ret::Claimed { index: *next, is_new: true }) {
                    return None;
                }
                claims.insert(id.clone(), *next);
                *claims_hash ^= hash_of(&(id, *next));
                *next += 1;
                Some(Undo::Claimed(id.clone(), *next - 1))
            }
            (Self::Counter { claims, .. }, Op::IndexOf { id, .. }, ret) => {
                (unknown || *ret == Ret::IndexOf(claims.get(id).copied())).then_some(Undo::Nothing)
            }
            (Self::Guard { marked }, Op::Mark { position, .. }, ret) => {
                let expected = match position.cmp(marked) {
                    std::cmp::Ordering::Less => Ret::Duplicate,
                    std::cmp::Ordering::Equal => Ret::First,
                    std::cmp::Ordering::Greater => Ret::OutOfOrder(*marked),
                };
                if !unknown && *ret != expected {
                    return None;
                }
                if expected == Ret::First {
                    *marked += 1;
                    return Some(Undo::Restore(saved));
                }
                Some(Undo::Nothing)
            }
            (Self::Lease { holder, last_token }, Op::Grant { ttl_ms, .. }, ret) => {
                // Free at some point of the window: no holder, or its deadline can have passed.
                let free = holder.is_none_or(|(_, earliest, _)| earliest <= to_ms);
                let held = holder.is_some_and(|(_, _, latest)| latest > from_ms);
                match ret {
                    Ret::Granted(Some(token)) if free && *token > *last_token => {
                        *holder = Some((*token, from_ms + ttl_ms, to_ms.saturating_add(*ttl_ms)));
                        *last_token = *token;
                        Some(Undo::Restore(saved))
                    }
                    Ret::Granted(None) if held => Some(Undo::Nothing),
                    Ret::Unknown if free => {
                        // Granted, with a token nobody learned (0 matches no release).
                        *holder = Some((0, from_ms + ttl_ms, u64::MAX));
                        Some(Undo::Restore(saved))
                    }
                    _ => None,
                }
            }
            (Self::Lease { holder, .. }, Op::Renew { token, .. } | Op::Release { token, .. }, ret) => {
                // Whether `token` can hold the lease at some point of the window, or have lost it.
                let live_holder = holder.is_some_and(|(t, _, latest)| t == *token && latest > from_ms);
                let lost = holder.is_none_or(|(t, earliest, _)| t != *token || earliest <= to_ms);
                let (succeeded, after) = match event.op {
                    Op::Renew { ttl_ms, .. } => {
                        (Ret::Renewed, Some((*token, from_ms + ttl_ms, to_ms.saturating_add(ttl_ms))))
                    }
                    _ => (Ret::Released, None),
                };
                match ret {
                    _ if (unknown || *ret == succeeded) && live_holder => {
                        *holder = after;
                        Some(Undo::Restore(saved))
                    }
                    Ret::NotOwner | Ret::Unknown if lost => Some(Undo::Nothing),
                    _ => None,
                }
            }
            (Self::Records { records, .. }, Op::Get { key, .. }, ret) => {
                let live = records.get(key).and_then(|&(value, version, _)| Some((value?, version)));
                (unknown || *ret == Ret::Record(live)).then_some(Undo::Nothing)
            }
            (Self::Records { records, floor }, Op::Put { key, value, expected, token, .. }, ret) => {
                let (live, fence) = match records.get(key) {
                    Some(&(value, version, fence)) => (value.map(|_| version), fence),
                    None => (None, 0),
                };
                let outcome = if token.is_some_and(|t| t < fence) {
                    Err(Ret::Stale(fence))
                } else if *expected != live {
                    Err(Ret::Conflict(live))
                } else {
                    Ok((live.unwrap_or(*floor) + 1, fence.max(token.unwrap_or(0))))
                };
                match outcome {
                    Ok((version, fence)) if unknown || *ret == Ret::Version(version) => {
                        records.insert(key.clone(), (Some(*value), version, fence));
                        Some(Undo::Restore(saved))
                    }
                    Err(refused) if unknown || *ret == refused => Some(Undo::Nothing),
                    _ => None,
                }
            }
            (Self::Records { records, floor }, Op::Delete { key, expected, .. }, ret) => {
                let live =
                    records.get(key).and_then(|&(value, version, fence)| value.map(|_| (version, fence)));
                let outcome = match (live.map(|(version, _)| version), expected) {
                    (current, Some(e)) if current != Some(*e) => Err(Ret::Conflict(current)),
                    (None, _) => Ok(false),
                    _ => Ok(true),
                };
                match outcome {
                    Ok(true) if unknown || *ret == Ret::Deleted(true) => {
                        let (version, fence) = live.expect("a live record was deleted");
                        *floor = (*floor).max(version);
                        if fence > 0 {
                            records.insert(key.clone(), (None, version, fence));
                        } else {
                            records.remove(key);
                        }
                        Some(Undo::Restore(saved))
                    }
                    Ok(false) if unknown || *ret == Ret::Deleted(false) => Some(Undo::Nothing),
                    Err(refused) if unknown || *ret == refused => Some(Undo::Nothing),
                    _ => None,
                }
            }
            _ => panic!("operation {:?} in the wrong partition", event.op),
        }
    }
}

fn partition_of(op: &Op) -> String {
    match op {
        Op::Next { counter } | Op::Claim { counter, .. } | Op::IndexOf { counter, .. } => {
            format!("counter {counter}")
        }
        Op::Mark { guard, stream, .. } => format!("guard {guard} stream {stream}"),
        Op::Grant { lock, key, .. } | Op::Renew { lock, key, .. } | Op::Release { lock, key, .. } => {
            format!("lock {lock} key {key}")
        }
        // One partition per space: a delete raises the floor every key of the space starts above.
        Op::Get { space, .. } | Op::Put { space, .. } | Op::Delete { space, .. } => format!("record {space}"),
    }
}

/// What a successful check covered.
#[derive(Debug, Default)]
pub struct Report {
    pub operations: usize,
    pub unknown: usize,
    pub partitions: usize,
    pub search_steps: u64,
}

/// Checks a whole history: every partition must be linearizable, and the tokens of one lock
/// must be distinct across its keys.
pub fn check(history: &[Event]) -> Result<Report, String> {
    let mut partitions: HashMap<String, Vec<&Event>> = HashMap::new();
    for event in history {
        partitions.entry(partition_of(&event.op)).or_default().push(event);
    }
    let mut report = Report { operations: history.len(), partitions: partitions.len(), ..Report::default() };
    report.unknown = history.iter().filter(|e| e.ret == Ret::Unknown).count();
    let mut names: Vec<_> = partitions.keys().cloned().collect();
    names.sort();
    for name in names {
        report.search_steps += check_partition(&partitions[&name]).map_err(|why| format!("{name}: {why}"))?;
    }
    let mut tokens = HashMap::new();
    for event in history {
        if let (Op::Grant { lock, key, .. }, Ret::Granted(Some(token))) = (&event.op, &event.ret) {
            if let Some(other) = tokens.insert((lock.clone(), *token), key.clone()) {
                return Err(format!("lock {lock}: token {token} granted on {other} and on {key}"));
            }
        }
    }
    Ok(report)
}

/// One entry of the time-ordered list: an operation's call or return.
struct Entry {
    op: usize,
    call: bool,
    prev: usize,
    next: usize,
    /// For a call, the index of its return entry (if the outcome is known).
    partner: Option<usize>,
}

/// Wing & Gong's search with Lowe's memoization of (linearized set, state): returns the number of
/// search steps, or why no linearization exists.
fn check_partition(events: &[&Event]) -> Result<u64, String> {
    let zobrist: Vec<u64> = (0..events.len()).map(|i| hash_of(&(i, 0x5EED_u64))).collect();
    // Entries sorted by time; calls before returns at equal times (the permissive reading).
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(events.len() * 2);
    for (i, e) in events.iter().enumerate() {
        order.push((e.invoked_us, false, i));
        if let Some(returned) = e.returned_us {
            order.push((returned.max(e.invoked_us), true, i));
        }
    }
    order.sort_unstable();
    const HEAD: usize = 0;
    let mut entries: Vec<Entry> =
        vec![Entry { op: usize::MAX, call: false, prev: HEAD, next: 1, partner: None }];
    let mut call_entry = vec![0; events.len()];
    for (at, &(_, is_return, op)) in order.iter().enumerate() {
        let index = at + 1;
        entries.push(Entry { op, call: !is_return, prev: index - 1, next: index + 1, partner: None });
        if is_return {
            entries[call_entry[op]].partner = Some(index);
        } else {
            call_entry[op] = index;
        }
    }
    let end = entries.len();
    let mut known_left = events.iter().filter(|e| e.returned_us.is_some()).count();

    let mut state = State::for_op(&events[0].op);
    let mut linearized_hash = 0u64;
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut stack: Vec<(usize, Undo)> = Vec::new();
    let mut steps = 0u64;
    let mut deepest = (0usize, usize::MAX);
    let mut entry = entries[HEAD].next;

    let lift = |entries: &mut Vec<Entry>, at: usize| {
        let (prev, next) = (entries[at].prev, entries[at].next);
        entries[prev].next = next;
        if next < end {
            entries[next].prev = prev;
        }
        if let Some(partner) = entries[at].partner {
            let (prev, next) = (entries[partner].prev, entries[partner].next);
            entries[prev].next = next;
            if next < end {
                entries[next].prev = prev;
            }
        }
    };
    let unlift = |entries: &mut Vec<Entry>, at: usize| {
        if let Some(partner) = entries[at].partner {
            let (prev, next) = (entries[partner].prev, entries[partner].next);
            entries[prev].next = partner;
            if next < end {
                entries[next].prev = partner;
            }
        }
        let (prev, next) = (entries[at].prev, entries[at].next);
        entries[prev].next = at;
        if next < end {
            entries[next].prev = at;
        }
    };

    loop {
        if known_left == 0 {
            return Ok(steps);
        }
        steps += 1;
        assert!(entry < end, "a known operation's return must come before the end of the list");
        let op = entries[entry].op;
        if entries[entry].call {
            if let Some(undo) = state.step(events[op]) {
                let key = (linearized_hash ^ zobrist[op], state.hash());
                if seen.insert(key) {
                    linearized_hash ^= zobrist[op];
                    known_left -= usize::from(events[op].returned_us.is_some());
                    lift(&mut entries, entry);
                    stack.push((entry, undo));
                    entry = entries[HEAD].next;
                    continue;
                }
                state.undo(undo);
            }
            entry = entries[entry].next;
        } else {
            // A return reached before its call was linearized: backtrack.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), op);
            }
            let Some((at, undo)) = stack.pop() else {
                let blocked = events[deepest.1];
                return Err(format!(
                    "not linearizable: after {} operations in order, no order explains {:?} -> {:?} \
                     (invoked at {} µs, returned at {:?} µs)",
                    deepest.0, blocked.op, blocked.ret, blocked.invoked_us, blocked.returned_us
                ));
            };
            let op = entries[at].op;
            state.undo(undo);
            linearized_hash ^= zobrist[op];
            known_left += usize::from(events[op].returned_us.is_some());
            unlift(&mut entries, at);
            entry = entries[at].next;
        }
    }
}
