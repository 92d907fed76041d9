//! Redis Cluster (`redis+cluster://`) on real clusters of Debian's redis-server started here:
//! every request goes to its slot's primary, a slot migrating while 8 clients run loses and
//! repeats nothing (`MOVED`, `ASK` and `TRYAGAIN` followed), a request whose node froze is never
//! sent twice, walks cover every primary, and a primary killed while 8 clients run is replaced
//! without a token handed out twice. (The conformance suite also runs on a cluster:
//! `conformance.rs`.)
#![cfg(feature = "redis")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use common::redis_server::{calls, RedisCluster};
use common::test_server::fresh_namespace;
use racefree::store::redis::cluster::slot;
use racefree::store::redis::protocol::Layout;
use racefree::{Counter, SharedStore, StartLock};

fn open(url: &str) -> SharedStore {
    racefree::open(url).expect("cluster store")
}

/// The tokio store on `url` (a multiplexed connection per node), driven from these threads.
#[cfg(feature = "tokio")]
fn open_async(url: &str) -> SharedStore {
    common::on_async::open(url, Arc::new(racefree::SystemClock))
}

/// The slot of `name`'s keys (every key of one primitive instance shares its hash tag).
fn slot_of(namespace: &str, name: &str) -> u16 {
    slot(Layout::new(namespace).key(name, 'c', None).as_bytes())
}

#[test]
fn each_instance_lives_on_its_slots_primary_and_walks_cover_every_primary() {
    let cluster = RedisCluster::shared();
    let namespace = fresh_namespace("spread");
    let store = open(&cluster.url(&format!("namespace={namespace}")));
    let names: Vec<String> = (0..30).map(|i| format!("task:{i}")).collect();
    for name in &names {
        Counter::new(&store, name).expect("counter").next().expect("next");
    }
    // Each counter's key is on the primary its slot names, and the 30 spread over every primary.
    let first = cluster.nodes[0].port;
    let mut per_primary: BTreeMap<u16, usize> = BTreeMap::new();
    for name in &names {
        let owner = cluster.owner_of(slot_of(&namespace, name), first);
        let key = Layout::new(&namespace).key(name, 'c', None);
        assert_eq!(cluster.node(owner).command(&["GET", &key]), "1", "{name} on {owner}");
        *per_primary.entry(owner).or_default() += 1;
    }
    assert_eq!(per_primary.len(), 3, "{per_primary:?}");
    let found = store.inspect().expect("inspect");
    assert_eq!(found.counters.len(), 30, "inspect walks every primary");
    assert_eq!(store.stats().expect("stats").entries, 30);
    // Judged by a clock of its own, an expired entry stays until a sweep, which visits every
    // primary: leases of 30 locks (spread over the slots) all expire, and one sweep removes them.
    let clock = Arc::new(racefree::ManualClock::new(1_000_000));
    let judged = racefree::open_with_clock(&cluster.url(&format!("namespace={namespace}")), clock.clone())
        .expect("cluster store");
    for name in &names {
        let lock = StartLock::new(&judged, name).expect("lock");
        lock.try_start("k", Duration::from_millis(50)).expect("grant").expect("free");
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(judged.sweep().expect("sweep"), 30, "every expired lease, on every primary");
    assert!(judged.inspect().expect("inspect").leases.is_empty());
}

#[test]
fn cluster_urls_are_checked_before_connecting() {
    for (url, says) in [
        ("redis+cluster://127.0.0.1:1/0", "one database"),
        ("redis+cluster://", "empty node address"),
        ("redis+cluster://127.0.0.1:1?tls_ca=/x.pem", "TLS options"),
    ] {
        let err = racefree::store::StoreUrl::parse(url).map(drop).expect_err(url);
        assert_eq!(err.code(), "invalid_argument", "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
    }
    racefree::store::StoreUrl::parse("rediss+cluster://127.0.0.1:1,127.0.0.1:2?tls_ca=/x.pem")
        .expect("valid");
    let err = racefree::open("redis+cluster://127.0.0.1:1?timeout_ms=300").expect_err("nothing listens");
    assert_eq!(err.code(), "backend_unavailable", "{err}");
}

#[test]
fn a_request_whose_node_froze_is_never_sent_twice() {
    a_frozen_nodes_request_is_sent_once(open);
}

#[cfg(feature = "tokio")]
#[test]
fn a_request_whose_node_froze_is_never_sent_twice_on_tokio() {
    a_frozen_nodes_request_is_sent_once(open_async);
}

fn a_frozen_nodes_request_is_sent_once(open: fn(&str) -> SharedStore) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(()); // each freezes a node of the shared cluster
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let cluster = RedisCluster::shared();
    let namespace = fresh_namespace("frozen");
    let store = open(&cluster.url(&format!("namespace={namespace}&timeout_ms=300")));
    let lock = StartLock::new(&store, "frozen").expect("lock");
    lock.try_start("warm", Duration::from_secs(30)).expect("warm-up").expect("free"); // loads the script
    let owner = cluster.owner_of(slot_of(&namespace, "frozen"), cluster.nodes[0].port);
    let node = cluster.node(owner);
    let before = calls(&node.command(&["INFO", "commandstats"]), "evalsha");
    let pid = node.pid().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    // The node wakes 450 ms later, after the request's 300 ms: a client that sent it again
    // after the timeout would have it run twice.
    let thaw = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(450));
        assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
    });
    let outcome = lock.try_start("k", Duration::from_secs(30));
    thaw.join().expect("thaw");
    let err = outcome.expect_err("the node did not answer in time");
    assert_eq!(err.code(), "timeout", "{err}");
    std::thread::sleep(Duration::from_millis(300));
    let after = calls(&node.command(&["INFO", "commandstats"]), "evalsha");
    // The frozen node ran the one request it had received when it woke; nothing was resent.
    assert_eq!(after - before, 1, "the grant was sent {} times", after - before);
    assert!(lock.holder("k").expect("holder").is_some(), "the unknown outcome was a grant");
}

#[test]
fn a_slot_migrating_while_8_clients_run_loses_and_repeats_nothing() {
    a_slot_migrates_under_8_clients(open);
}

#[cfg(feature = "tokio")]
#[test]
fn a_slot_migrating_while_8_clients_run_on_tokio_loses_and_repeats_nothing() {
    a_slot_migrates_under_8_clients(open_async);
}

fn a_slot_migrates_under_8_clients(open: fn(&str) -> SharedStore) {
    let cluster = RedisCluster::start(3, 0);
    let namespace = fresh_namespace("migrating");
    let store = open(&cluster.url(&format!("namespace={namespace}&timeout_ms=2000")));
    let first = cluster.nodes[0].port;
    let slot = slot_of(&namespace, "jobs");
    let from = cluster.owner_of(slot, first);
    let to = *cluster.primaries().iter().find(|&&p| p != from).expect("another primary");
    let counter = Arc::new(Counter::new(&store, "jobs").expect("counter"));
    let lock = StartLock::new(&store, "jobs").expect("lock"); // the same hash tag: the same slot
    let (stop, start) = (Arc::new(AtomicBool::new(false)), Arc::new(Barrier::new(9)));
    let not_run = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (counter, lock, stop, start, not_run) = (
                Arc::clone(&counter),
                lock.clone(),
                Arc::clone(&stop),
                Arc::clone(&start),
                Arc::clone(&not_run),
            );
            std::thread::spawn(move || {
                let (mut indexes, mut tokens) = (Vec::new(), Vec::new());
                start.wait();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A claim that did not run is claimed again (replay-safe by its id).
                    let id = format!("w{t}-{i}");
                    loop {
                        match counter.claim(&id) {
                            Ok(claim) => break indexes.push(claim.index),
                            Err(err) => {
                                *not_run.lock().unwrap().entry(err.code().to_owned()).or_default() += 1
                            }
                        }
                    }
                    if let Ok(Some(lease)) = lock.try_start(&format!("k{t}"), Duration::from_secs(30)) {
                        tokens.push(lease.token());
                        let _ = lease.release();
                    }
                    i += 1;
                }
                (indexes, tokens)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(300));
    cluster.migrate(slot, from, to);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (mut indexes, mut tokens) = (Vec::new(), Vec::new());
    for worker in workers {
        let (i, t) = worker.join().expect("worker");
        indexes.extend(i);
        tokens.extend(t);
    }
    indexes.sort_unstable();
    let expected: Vec<u64> = (0..indexes.len() as u64).collect();
    assert_eq!(indexes, expected, "every claim got its own index, none skipped");
    let distinct: BTreeSet<u64> = tokens.iter().copied().collect();
    assert_eq!(distinct.len(), tokens.len(), "a token was handed out twice");
    assert_eq!(cluster.owner_of(slot, first), to, "the slot moved");
    let key = Layout::new(&namespace).key("jobs", 'c', None);
    assert_eq!(
        cluster.node(to).command(&["GET", &key]),
        indexes.len().to_string(),
        "the counter is on its new primary"
    );
    let refused = not_run.lock().unwrap().clone();
    assert!(
        refused.keys().all(|code| code == "backend_unavailable"),
        "only requests that did not run fail: {refused:?}"
    );
    let asking = calls(&cluster.node(to).command(&["INFO", "commandstats"]), "asking");
    eprintln!(
        "migration of slot {slot} from {from} to {to}: {} claims, {} grants, refused (did not run) {refused:?}, ASKING sent {asking}",
        indexes.len(),
        tokens.len()
    );
    assert!(asking > 0, "no client met the slot half-moved (ASK)");
}

#[test]
fn a_primary_killed_while_8_clients_run_is_replaced_and_no_token_repeats() {
    a_primary_is_killed_under_8_clients(open);
}

#[cfg(feature = "tokio")]
#[test]
fn a_primary_killed_while_8_clients_run_on_tokio_is_replaced_and_no_token_repeats() {
    a_primary_is_killed_under_8_clients(open_async);
}

fn a_primary_is_killed_under_8_clients(open: fn(&str) -> SharedStore) {
    let mut cluster = RedisCluster::start(3, 1);
    let namespace = fresh_namespace("killed");
    let store = open(&cluster.url(&format!("namespace={namespace}&timeout_ms=500")));
    let first = cluster.nodes[0].port;
    let slot = slot_of(&namespace, "jobs");
    let victim = cluster.owner_of(slot, first);
    let asked = *cluster.primaries().iter().find(|&&p| p != victim).expect("a surviving primary");
    let lock = StartLock::new(&store, "jobs").expect("lock");
    let counter = Arc::new(Counter::new(&store, "jobs").expect("counter"));
    let (stop, start) = (Arc::new(AtomicBool::new(false)), Arc::new(Barrier::new(9)));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (lock, counter, stop, start) =
                (lock.clone(), Arc::clone(&counter), Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                let (mut tokens, mut errors, mut last_ok) =
                    (Vec::new(), BTreeMap::<String, u64>::new(), None);
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    let outcome =
                        lock.try_start(&format!("k{t}"), Duration::from_secs(30)).and_then(|granted| {
                            if let Some(lease) = granted {
                                tokens.push(lease.token());
                                lease.release()?;
                            }
                            counter.next().map(drop)
                        });
                    match outcome {
                        Ok(()) => last_ok = Some(Instant::now()),
                        Err(err) => *errors.entry(err.code().to_owned()).or_default() += 1,
                    }
                }
                (tokens, errors, last_ok)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_millis(500));
    let survivors: Vec<u16> = cluster.nodes.iter().map(|n| n.port).filter(|&p| p != victim).collect();
    let map_reads = |cluster: &RedisCluster| -> u64 {
        survivors
            .iter()
            .map(|&p| calls(&cluster.node(p).command(&["INFO", "commandstats"]), "cluster|slots"))
            .sum()
    };
    let reads_before = map_reads(&cluster);
    let killed_at = Instant::now();
    cluster.node_mut(victim).kill();
    cluster.wait_until(|| cluster.owner_of(slot, asked) != victim);
    let replaced_after = killed_at.elapsed();
    std::thread::sleep(Duration::from_millis(1500));
    let settled = Instant::now() - Duration::from_millis(500);
    stop.store(true, Ordering::Relaxed);
    let (mut tokens, mut errors) = (Vec::new(), BTreeMap::<String, u64>::new());
    for worker in workers {
        let (t, e, last_ok) = worker.join().expect("worker");
        assert!(last_ok.is_some_and(|at| at > settled), "a client did not recover after the failover: {e:?}");
        tokens.extend(t);
        for (code, n) in e {
            *errors.entry(code).or_default() += n;
        }
    }
    let distinct: BTreeSet<u64> = tokens.iter().copied().collect();
    assert_eq!(distinct.len(), tokens.len(), "a token was handed out twice across the failover");
    // One store, at most one read of the map per 100 ms (`REREAD_AFTER`), plus the test's own.
    let map_read = map_reads(&cluster) - reads_before;
    let allowed = 20 + 10 * killed_at.elapsed().as_secs() * 2;
    assert!(
        map_read <= allowed,
        "{map_read} reads of the slot map in {:?} (at most {allowed})",
        killed_at.elapsed()
    );
    assert!(errors.keys().all(|code| code == "timeout" || code == "backend_unavailable"), "{errors:?}");
    eprintln!(
        "primary {victim} killed: replaced after {replaced_after:?}; {} grants, errors during the switch {errors:?}, {map_read} reads of the map",
        tokens.len()
    );
}

#[test]
fn a_frozen_primary_holds_up_only_the_calls_that_go_to_it() {
    a_frozen_primary_delays_only_its_calls(open);
}

#[cfg(feature = "tokio")]
#[test]
fn a_frozen_primary_holds_up_only_the_calls_that_go_to_it_on_tokio() {
    a_frozen_primary_delays_only_its_calls(open_async);
}

/// A primary frozen (SIGSTOP: it accepts connections and answers nothing) makes its calls time
/// out; the calls to the other primaries go on answering promptly — also once the timeout has
/// made the store read the slot map again (it asks the frozen node last).
fn a_frozen_primary_delays_only_its_calls(open: fn(&str) -> SharedStore) {
    let cluster = RedisCluster::start(3, 0);
    let namespace = fresh_namespace("shunned");
    let store = open(&cluster.url(&format!("namespace={namespace}&timeout_ms=1000")));
    let first = cluster.nodes[0].port;
    let owner = |name: &str| cluster.owner_of(slot_of(&namespace, name), first);
    // The primary of slot 0: the first the store asks for the map (CLUSTER SLOTS lists by slot).
    let frozen = cluster.owner_of(0, first);
    let frozen_name =
        (0..).map(|i| format!("c{i}")).find(|name| owner(name) == frozen).expect("a name there");
    let live_name =
        (0..).map(|i| format!("c{i}")).find(|name| owner(name) != frozen).expect("a name elsewhere");
    let (on_frozen, on_live) = (
        Counter::new(&store, &frozen_name).expect("counter"),
        Counter::new(&store, &live_name).expect("counter"),
    );
    on_frozen.next().expect("next");
    on_live.next().expect("next");
    let pid = cluster.node(frozen).pid().expect("pid").to_string();
    let signal = |sig: &str| {
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().expect("kill").success())
    };
    signal("-STOP");
    let outcome = std::thread::scope(|scope| {
        let stuck = scope.spawn(|| on_frozen.next());
        let mut slowest = Duration::ZERO;
        let until = Instant::now() + Duration::from_millis(1_800);
        while Instant::now() < until {
            let started = Instant::now();
            on_live.next().expect("a call to a live primary");
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        (stuck.join().expect("stuck call"), slowest)
    });
    signal("-CONT");
    let (stuck, slowest) = outcome;
    assert_eq!(stuck.map_err(|e| e.code()), Err("timeout"));
    assert!(slowest < Duration::from_millis(400), "a call to a live primary waited {slowest:?}");
}
