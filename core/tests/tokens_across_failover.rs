//! Fencing tokens stay strictly increasing across a failover that lost the last grants, on real
//! servers started by the tests: the replica that takes over is cut off from the primary first,
//! the primary then acknowledges more grants (the writes asynchronous replication loses), and is
//! killed. The promoted replica's last token is behind the tokens the lost grants handed out;
//! its next tokens must still be larger than every one of them (they never fall behind the
//! server's clock, and the promotion came later on that clock).
//!
//! The assumption this rests on, stated in the README ("Fencing tokens across a failover"): the
//! promoted server's clock, when it grants, is past the old primary's clock at its last grant —
//! the failover takes longer than the two clocks differ. Here both run on one machine's clock.
#![cfg(any(feature = "redis", feature = "postgres"))]

mod common;

use std::time::Duration;

use racefree::{SharedStore, StartLock};

const TTL: Duration = Duration::from_secs(60);

/// Grants `count` keys of lock `tasks` (each released again) and returns their tokens.
fn grant_keys(store: &SharedStore, prefix: &str, count: usize) -> Vec<u64> {
    let lock = StartLock::new(store, "tasks").expect("lock");
    (0..count)
        .map(|i| {
            let lease = lock.try_start(&format!("{prefix}{i}"), TTL).expect("grant").expect("a free key");
            let token = lease.token();
            lease.release().expect("release");
            token
        })
        .collect()
}

/// What the clients saw: every token in the order handed out must be larger than all before it.
fn assert_strictly_increasing(tokens: &[u64]) {
    let repeated_or_smaller = tokens.windows(2).filter(|pair| pair[1] <= pair[0]).count();
    assert_eq!(repeated_or_smaller, 0, "tokens handed out across the failover: {tokens:?}");
}

#[cfg(feature = "redis")]
#[test]
fn redis_a_promoted_replica_that_lost_the_last_grants_issues_larger_tokens() {
    use common::redis_server::RedisServer;

    let mut primary = RedisServer::start(&[]);
    let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let url = |server: &RedisServer| format!("redis://127.0.0.1:{}/0?namespace=fence", server.port);
    let token_key = racefree::store::redis::protocol::Layout::new("fence").key("tasks", 't', None);
    let last_token = |server: &RedisServer| server.command(&["GET", &token_key]);
    let on_primary = racefree::open(&url(&primary)).expect("open the primary");
    wait_until(|| replica.command(&["INFO", "replication"]).contains("master_link_status:up"));

    let mut tokens = grant_keys(&on_primary, "replicated-", 3);
    wait_until(|| last_token(&replica) == tokens[2].to_string());
    // The replica is promoted; the primary does not know and acknowledges grants it never sends.
    assert!(replica.command(&["REPLICAOF", "NO", "ONE"]).starts_with("+OK"));
    let lost = grant_keys(&on_primary, "lost-", 3);
    tokens.extend(&lost);
    primary.kill();

    let on_replica = racefree::open(&url(&replica)).expect("open the promoted replica");
    let last_kept: u64 = last_token(&replica).parse().expect("the last token");
    assert!(last_kept < lost[0], "the promoted replica lost the last grants ({last_kept} < {lost:?})");
    tokens.extend(grant_keys(&on_replica, "after-", 3));
    assert_strictly_increasing(&tokens);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_a_promoted_standby_that_lost_the_last_grants_issues_larger_tokens() {
    use common::postgres_server::PostgresServer;

    let mut primary = PostgresServer::start(&[]);
    let standby = PostgresServer::standby_of(&primary);
    // One store over both hosts: it writes where writes are taken, and follows the promotion.
    let url = format!(
        "postgres://racefree@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&timeout_ms=3000",
        primary.port, standby.port
    );
    let store = racefree::open(&url).expect("open");

    let mut tokens = grant_keys(&store, "replicated-", 3);
    standby.catch_up_with(&primary);
    // The standby is promoted; the old primary still takes the store's writes, which it never
    // streams to the new one.
    standby.promote();
    let lost = grant_keys(&store, "lost-", 3);
    tokens.extend(&lost);
    primary.kill();

    let last_kept: u64 = standby
        .psql("postgres", "SELECT max(last) FROM racefree_lock_tokens")
        .parse()
        .expect("the last token");
    assert!(last_kept < lost[0], "the promoted standby lost the last grants ({last_kept} < {lost:?})");
    // The first call may meet the killed server's pooled connection: a typed error, then the
    // store finds the promoted standby. (A grant whose outcome was unknown took its own key.)
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let mut after = Vec::new();
    for attempt in 0..50 {
        match lock.try_start(&format!("after-{attempt}"), TTL) {
            Ok(lease) => after.push(lease.expect("a free key").token()),
            Err(err) => assert!(matches!(err.code(), "backend_unavailable" | "timeout"), "{err:?}"),
        }
        if after.len() == 3 {
            break;
        }
    }
    assert_eq!(after.len(), 3, "grants on the promoted standby: {after:?}");
    tokens.extend(after);
    assert_strictly_increasing(&tokens);
}

#[cfg(feature = "redis")]
fn wait_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "not there in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
