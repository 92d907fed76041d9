//! The lease lifecycle, sans-IO: every branch of `LeaseKeeper` and `Acquisition` on hand-moved
//! time, then a keeper driven over a real memory store through injected timeouts, outages and
//! slow replies, checked at every millisecond against the store's own view of the lease.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use racefree::{
    safety_margin, Acquisition, Error, KeeperOptions, KeeperStep, LeaseKeeper, LossReason, ManualClock,
    MemoryStore, SharedClock, SharedStore, StartLock,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn keeper(ttl: u64) -> LeaseKeeper {
    KeeperOptions::new(ms(ttl)).expect("options").keep("k", 7, ms(0))
}

fn reason(step: KeeperStep) -> LossReason {
    match step {
        KeeperStep::Lost(Error::LeaseLost { key, token, reason }) => {
            assert_eq!((key.as_str(), token), ("k", 7));
            reason
        }
        other => panic!("expected a lost lease, got {other:?}"),
    }
}

fn timeout() -> Error {
    Error::Timeout { waited: ms(300) }
}

#[test]
fn options_refuse_what_cannot_keep_a_lease() {
    let ttl = ms(900);
    assert_eq!(KeeperOptions::new(Duration::ZERO).unwrap_err().code(), "invalid_argument");
    let options = KeeperOptions::new(ttl).expect("options");
    assert_eq!(options.renew_every(), ms(300));
    for bad in [Duration::ZERO, ttl, ms(901)] {
        assert_eq!(options.with_renew_every(bad).unwrap_err().code(), "invalid_argument", "{bad:?}");
    }
    assert_eq!(options.with_renew_every(ms(899)).expect("below ttl").renew_every(), ms(899));
    assert_eq!(options.with_max_hold(ms(899)).unwrap_err().code(), "invalid_argument");
    assert_eq!(options.with_max_hold(ttl).expect("the ttl itself").max_hold(), Some(ttl));
}

#[test]
fn renewals_are_due_every_renew_every_from_the_confirmed_send() {
    let mut k = keeper(900);
    assert_eq!(k.poll(ms(0)), KeeperStep::WaitUntil(ms(300)));
    assert_eq!(k.poll(ms(299)), KeeperStep::WaitUntil(ms(300)));
    assert_eq!(k.poll(ms(300)), KeeperStep::Renew);
    // In flight: nothing more to send; wake at the safe deadline at the latest.
    let safe = ms(900) - safety_margin(ms(900));
    assert_eq!(k.poll(ms(350)), KeeperStep::WaitUntil(safe));
    // Confirmed late, but before the safe deadline: the lease counts from when it was *sent*.
    k.on_reply(Ok(123), ms(800));
    assert_eq!(k.safe_deadline(), ms(300 + 900) - safety_margin(ms(900)));
    assert_eq!(k.poll(ms(800)), KeeperStep::Renew, "next one due 300 ms after the send at 300");
}

#[test]
fn not_owner_is_lost_at_once_and_for_good() {
    let mut k = keeper(900);
    assert_eq!(k.poll(ms(300)), KeeperStep::Renew);
    k.on_reply(Err(Error::NotOwner { key: "k".into(), token: 7 }), ms(301));
    assert!(k.is_lost());
    assert_eq!(reason(k.poll(ms(301))), LossReason::NotOwner);
    k.on_reply(Ok(1), ms(302)); // a stray reply changes nothing
    assert_eq!(reason(k.poll(ms(303))), LossReason::NotOwner);
}

#[test]
fn retryable_failures_are_retried_until_the_safe_deadline_then_lost_with_the_last_error() {
    let mut k = keeper(900);
    let safe = k.safe_deadline();
    let mut now = ms(300);
    let mut attempts = 0;
    let mut last_error = None;
    let lost = loop {
        match k.poll(now) {
            KeeperStep::Renew => {
                attempts += 1;
                let error = if attempts % 2 == 0 {
                    timeout()
                } else {
                    Error::BackendUnavailable { reason: "down".into(), source: None }
                };
                // Each reply takes 5 ms. The retries are jittered, so the last one may still be in
                // flight at the safe deadline: the keeper wakes its driver there, and a reply
                // after it never counts.
                let replied = now + ms(5);
                let KeeperStep::WaitUntil(limit) = k.poll(now) else {
                    panic!("a renewal in flight waits for its reply");
                };
                if replied >= limit {
                    now = limit;
                    continue;
                }
                last_error = Some(error.code());
                k.on_reply(Err(error), replied);
                now = replied;
            }
            KeeperStep::WaitUntil(at) => {
                assert!(at > now && at <= safe, "wakes at {at:?}, now {now:?}, safe {safe:?}");
                assert!(at - now <= ms(300), "a retry waits at most renew_every");
                now = at;
            }
            KeeperStep::Lost(_) => break k.poll(now),
        }
    };
    assert_eq!(now, safe, "lost exactly at the safe deadline");
    assert!(attempts >= 4, "retried {attempts} times in 600 ms");
    let reason = reason(lost);
    assert_eq!(reason.code(), "renewals_failed");
    assert_eq!(reason.last_error().map(Error::code), last_error, "the last error a reply brought");
}

#[test]
fn a_success_after_failures_restores_the_schedule() {
    let mut k = keeper(900);
    assert_eq!(k.poll(ms(300)), KeeperStep::Renew);
    k.on_reply(Err(timeout()), ms(310));
    let KeeperStep::WaitUntil(retry) = k.poll(ms(310)) else { panic!("a retry is scheduled") };
    assert!(retry > ms(310) && retry <= ms(340), "first retry after renew_every / 10 or so: {retry:?}");
    assert_eq!(k.poll(retry), KeeperStep::Renew);
    k.on_reply(Ok(1), retry + ms(1));
    assert_eq!(k.safe_deadline(), retry + ms(900) - safety_margin(ms(900)));
    assert_eq!(k.poll(retry + ms(1)), KeeperStep::WaitUntil(retry + ms(300)));
}

#[test]
fn an_error_retrying_cannot_mend_is_lost_at_once() {
    let mut k = keeper(900);
    assert_eq!(k.poll(ms(300)), KeeperStep::Renew);
    k.on_reply(Err(Error::InvalidArgument { reason: "x".into() }), ms(301));
    let reason = reason(k.poll(ms(301)));
    assert_eq!(reason.last_error().map(Error::code), Some("invalid_argument"));
}

#[test]
fn a_renewal_confirmed_after_the_safe_deadline_does_not_bring_the_lease_back() {
    let mut k = keeper(900);
    let safe = k.safe_deadline();
    assert_eq!(k.poll(ms(300)), KeeperStep::Renew);
    // The driver was late to look: the success arrives after the safe deadline.
    k.on_reply(Ok(99), safe + ms(1));
    let reason = reason(k.poll(safe + ms(1)));
    assert_eq!(reason, LossReason::RenewalsFailed { last_error: None });
}

#[test]
fn max_hold_ends_the_lease_however_well_renewals_go() {
    let options = KeeperOptions::new(ms(900)).and_then(|o| o.with_max_hold(ms(1_000))).expect("options");
    let mut k = options.keep("k", 7, ms(50));
    let mut now = ms(50);
    let lost = loop {
        match k.poll(now) {
            KeeperStep::Renew => k.on_reply(Ok(0), now),
            KeeperStep::WaitUntil(at) => now = at,
            KeeperStep::Lost(_) => break reason(k.poll(now)),
        }
    };
    assert_eq!(now, ms(1_050));
    assert_eq!(lost, LossReason::MaxHoldReached);
}

#[test]
fn check_judges_by_the_clock_without_asking_for_renewals() {
    let mut k = keeper(900);
    assert!(k.check(ms(800)).is_none());
    assert!(k.check(k.safe_deadline()).is_some());
    assert!(k.is_lost());
}

#[test]
fn acquisition_validates_before_anything_and_times_out_on_its_schedule() {
    assert_eq!(Acquisition::new(Duration::ZERO, None, ms(0)).unwrap_err().code(), "invalid_argument");
    let mut wait = Acquisition::new(ms(1_000), Some(ms(100)), ms(10)).expect("acquisition");
    let mut now = ms(10);
    let mut pauses = Vec::new();
    let err = loop {
        match wait.retry_after(now) {
            Ok(pause) => {
                assert!(!pause.is_zero() && pause <= ms(50));
                assert!(now + pause <= ms(110), "never sleeps past the timeout");
                pauses.push(pause);
                now += pause;
            }
            Err(err) => break err,
        }
    };
    assert_eq!(now, ms(110));
    assert_eq!(err, Error::Timeout { waited: ms(100) });
    assert!(pauses.windows(2).take(4).all(|p| p[1] >= p[0] / 2), "grows: {pauses:?}");
    // Zero: one attempt, then the timeout.
    assert_eq!(
        Acquisition::new(ms(1_000), Some(Duration::ZERO), ms(0))
            .expect("a")
            .retry_after(ms(0))
            .unwrap_err()
            .code(),
        "timeout"
    );
    // None: never times out.
    let mut forever = Acquisition::new(ms(1_000), None, ms(0)).expect("a");
    assert!((0..1_000).all(|i| forever.retry_after(ms(i * 1_000_000)).is_ok()));
}

// ---- a keeper driven over a real store, with faults ----

/// What happens to one renewal on its way to the store and back.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Arrives after `to` ms, is applied, replies after `back` ms.
    Answered { to: u64, back: u64 },
    /// Arrives after `to` ms and is applied, but the reply is lost: the client times out at `timeout` ms.
    AppliedThenTimedOut { to: u64, timeout: u64 },
    /// Never arrives; the client times out after `timeout` ms.
    TimedOut { timeout: u64 },
    /// The connection is refused after `after` ms.
    Unavailable { after: u64 },
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        4 => (0..40u64, 0..40u64).prop_map(|(to, back)| Fate::Answered { to, back }),
        1 => (0..400u64, 0..400u64).prop_map(|(to, back)| Fate::Answered { to, back }),
        1 => (0..100u64, 100..400u64).prop_map(|(to, timeout)| Fate::AppliedThenTimedOut { to, timeout: to.max(timeout) }),
        1 => (1..500u64).prop_map(|timeout| Fate::TimedOut { timeout }),
        1 => (0..50u64).prop_map(|after| Fate::Unavailable { after }),
    ]
}

/// Local (monotonic) time and the store's clock, the store's running `fast_per_mille` faster.
struct Clocks {
    local_ms: u64,
    store: Arc<ManualClock>,
    start_ms: u64,
    fast_per_mille: u64,
}

impl Clocks {
    fn advance_to(&mut self, local_ms: u64, check: &mut impl FnMut(u64)) {
        while self.local_ms < local_ms {
            self.local_ms += 1;
            let store_ms = self.start_ms + self.local_ms + self.local_ms * self.fast_per_mille / 1000;
            self.store.set(store_ms);
            check(self.local_ms);
        }
    }
}

/// Drives a keeper over a memory store through `fates` and checks, at every millisecond, that
/// whenever the keeper says the lease is held the store agrees the token holds the key.
fn run_keeper(fates: &[Fate], ttl: u64, renew_every: Option<u64>, fast_per_mille: u64) -> Result<(), String> {
    let store_clock = Arc::new(ManualClock::new(1_000_000));
    let shared: SharedClock = store_clock.clone();
    let store: SharedStore = Arc::new(MemoryStore::with_clock(shared));
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let mut options = KeeperOptions::new(ms(ttl)).expect("options");
    if let Some(every) = renew_every {
        options = options.with_renew_every(ms(every)).expect("renew_every");
    }
    let grant = lock.try_grant("k", ms(ttl)).expect("grant").expect("free");
    let keeper = std::cell::RefCell::new(options.keep("k", grant.token, ms(0)));
    let mut clocks = Clocks { local_ms: 0, store: store_clock, start_ms: 1_000_000, fast_per_mille };
    let mut violation = None;
    let mut check = |now: u64| {
        let held_by_us = lock.holder("k").expect("holder").is_some_and(|h| h.token == grant.token);
        if keeper.borrow_mut().check(ms(now)).is_none() && !held_by_us && violation.is_none() {
            violation = Some(format!("at {now} ms the keeper says held, the store says otherwise"));
        }
    };
    let mut fates = fates.iter().copied();
    loop {
        let step = keeper.borrow_mut().poll(ms(clocks.local_ms));
        match step {
            KeeperStep::Lost(_) => break,
            KeeperStep::WaitUntil(at) => {
                let at = u64::try_from(at.as_millis()).expect("ms");
                clocks.advance_to(at.max(clocks.local_ms + 1), &mut check);
            }
            KeeperStep::Renew => {
                let Some(fate) = fates.next() else { break };
                let sent = clocks.local_ms;
                let renew = || lock.renew_token("k", grant.token, ms(ttl));
                let reply = match fate {
                    Fate::Answered { to, back } => {
                        clocks.advance_to(sent + to, &mut check);
                        let reply = renew();
                        clocks.advance_to(sent + to + back, &mut check);
                        reply
                    }
                    Fate::AppliedThenTimedOut { to, timeout } => {
                        clocks.advance_to(sent + to, &mut check);
                        let _ = renew();
                        clocks.advance_to(sent + timeout, &mut check);
                        Err(Error::Timeout { waited: ms(timeout) })
                    }
                    Fate::TimedOut { timeout } => {
                        clocks.advance_to(sent + timeout, &mut check);
                        Err(Error::Timeout { waited: ms(timeout) })
                    }
                    Fate::Unavailable { after } => {
                        clocks.advance_to(sent + after, &mut check);
                        Err(Error::BackendUnavailable { reason: "refused".into(), source: None })
                    }
                };
                keeper.borrow_mut().on_reply(reply, ms(clocks.local_ms));
            }
        }
    }
    violation.map_or(Ok(()), Err)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("RACEFREE_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64)
    ))]

    /// Through any mix of slow, lost and refused renewals, and a store clock up to 0.9% fast, a
    /// keeper never calls a lease held that the store has let go.
    #[test]
    fn a_kept_lease_is_never_held_by_the_keeper_alone(
        fates in proptest::collection::vec(fate(), 1..40),
        ttl in 100..2_000u64,
        every_percent in proptest::option::of(5..95u64),
        fast_per_mille in 0..9u64,
    ) {
        let renew_every = every_percent.map(|p| (ttl * p / 100).max(1));
        run_keeper(&fates, ttl, renew_every, fast_per_mille).map_err(TestCaseError::fail)?;
    }
}
