//! What only the Redis store has: the server's clock, a server that goes away and comes back,
//! restarts with and without fsync, key layout, and round trips per operation.
#![cfg(feature = "redis")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::redis_server::{calls, RedisServer};
use racefree::{Counter, CounterEntry, EventGuard, Mark, RecordEntry, Records, SharedStore, StartLock};
use serde_json::json;

fn open(url: &str) -> SharedStore {
    racefree::open(url).expect("open")
}

/// The TTL of what must still be there at the next call: a loaded 2-core machine can stall a
/// thread for a few hundred milliseconds between two calls, so a second. Waits past it are
/// twice as long: sleeping longer only makes "expired" more certain.
const SHORT_TTL: Duration = Duration::from_secs(1);

#[test]
fn server_clock_expires_leases_and_marks_by_itself() {
    let store = open(&RedisServer::shared().fresh_url());
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let first = lock.try_start("k", SHORT_TTL).expect("start").expect("free");
    assert!(first.time_left() <= SHORT_TTL && first.time_left() > Duration::ZERO);
    assert!(lock.try_start("k", Duration::from_secs(5)).expect("start").is_none(), "second starter won");
    std::thread::sleep(2 * SHORT_TTL);
    assert!(!lock.is_held("k").expect("is_held"), "the lease outlived its TTL on the server's clock");
    let second = lock.try_start("k", Duration::from_secs(5)).expect("start").expect("expired lease");
    assert!(second.token() > first.token());
    assert_eq!(first.release().map_err(|e| e.code()), Err("not_owner"));
    second.renew(SHORT_TTL).expect("renew");
    std::thread::sleep(2 * SHORT_TTL);
    assert_eq!(second.release().map_err(|e| e.code()), Err("not_owner"), "renewal did not set the new TTL");

    let options = racefree::GuardOptions::retention(SHORT_TTL);
    let guard = EventGuard::with_options(&store, "g", &["started"], options).expect("guard");
    assert_eq!(guard.mark("s", "started"), Ok(Mark::First));
    assert_eq!(guard.mark("s", "started"), Ok(Mark::Duplicate));
    std::thread::sleep(2 * SHORT_TTL);
    assert_eq!(guard.mark("s", "started"), Ok(Mark::First), "marks outlived their retention");
    // Redis removed the expired keys itself (PX): nothing is left for a sweep.
    std::thread::sleep(2 * SHORT_TTL);
    assert_eq!(store.stats().expect("stats").entries, 0);
}

#[test]
fn namespaces_and_odd_names_never_share_keys() {
    let server = RedisServer::shared();
    let url = server.fresh_url();
    let a = open(&format!("{url}a"));
    let ab = open(&format!("{url}a:b"));
    // Names with the layout's own characters: without the length prefixes these would collide.
    Counter::new(&a, "b:c").expect("counter").set(100).expect("set");
    assert_eq!(Counter::new(&ab, "c").expect("counter").next(), Ok(0));
    let lock = StartLock::new(&a, "x}l:y").expect("lock");
    let other = StartLock::new(&a, "x").expect("lock");
    lock.try_start("z", Duration::from_secs(5)).expect("start").expect("free");
    assert!(other.try_start("y}l:z", Duration::from_secs(5)).expect("start").is_some(), "names collided");
    let records = Records::new(&a, "{p}").expect("records");
    records.put("*", &json!(1), None).expect("put");
    let inventory = a.inspect().expect("inspect");
    assert_eq!(inventory.counters, vec![CounterEntry { counter: "b:c".into(), next: 100, claims: 0 }]);
    let leases: Vec<_> = inventory.leases.iter().map(|l| (l.lock.as_str(), l.key.as_str())).collect();
    assert_eq!(leases, vec![("x", "y}l:z"), ("x}l:y", "z")]);
    assert_eq!(inventory.records, vec![RecordEntry { space: "{p}".into(), key: "*".into(), version: 1 }]);
    assert_eq!(
        ab.inspect().expect("inspect").counters,
        vec![CounterEntry { counter: "c".into(), next: 1, claims: 0 }]
    );
    assert_eq!(a.stats().expect("stats").entries, 4);
}

#[test]
fn a_stopped_server_is_a_prompt_error_that_records_nothing_and_recovers() {
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = open(&format!("redis://127.0.0.1:{}/0?timeout_ms=500", server.port));
    let counter = Counter::new(&store, "task:1").expect("counter");
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let records = Records::new(&store, "pods").expect("records");
    assert_eq!(counter.next(), Ok(0));
    records.put("p", &json!(1), None).expect("put");
    server.stop();

    let started = Instant::now();
    // The first request goes out on the pooled connection the server closed while it was idle:
    // written, then no reply. The client cannot tell that close from one after the write, so
    // the outcome is unknown. The store then drops its pool and cannot connect: nothing runs.
    assert_eq!(counter.next().map_err(|e| e.code()), Err("timeout"));
    for _ in 0..3 {
        assert_eq!(counter.next().map_err(|e| e.code()), Err("backend_unavailable"));
        assert_eq!(
            lock.try_start("k", Duration::from_secs(5)).map(|_| ()).map_err(|e| e.code()),
            Err("backend_unavailable")
        );
        assert_eq!(records.put("p", &json!(2), Some(1)).map_err(|e| e.code()), Err("backend_unavailable"));
        assert_eq!(counter.peek().map_err(|e| e.code()), Err("backend_unavailable"));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "failing took {:?}", started.elapsed());

    server.start_again();
    // Same store handle, not reopened; none of the failed calls left a trace (no grant took a
    // token: the lock has none yet).
    assert_eq!(counter.next(), Ok(1));
    assert_eq!(records.get("p").expect("get").map(|v| (v.value, v.version)), Some((json!(1), 1)));
    let last_token = racefree::store::redis::protocol::Layout::new("").key("tasks", 't', None);
    assert_eq!(server.command(&["EXISTS", &last_token]), ":0\r\n");
    assert!(lock.try_start("k", Duration::from_secs(5)).expect("start").is_some());
    assert_eq!(server.command(&["EXISTS", &last_token]), ":1\r\n", "the key the check above looked for");
}

/// Opens a store on a URL.
type Opener = fn(&str) -> SharedStore;

/// A request written to a server that then dies is `timeout`, the outcome unknown (the server
/// may have run it before it died), and never `backend_unavailable`, which says it did not run:
/// on the blocking and the tokio store. The server is frozen (SIGSTOP) so the request is surely
/// written and unanswered, then killed well inside the request timeout.
#[test]
fn a_server_killed_under_a_written_request_is_a_timeout() {
    let mut server = RedisServer::start(&[]);
    let url = format!("redis://127.0.0.1:{}/0?timeout_ms=10000", server.port);
    let stores: Vec<(&str, Opener)> = vec![
        ("blocking", open),
        #[cfg(feature = "tokio")]
        ("tokio", |url| common::on_async::open(url, std::sync::Arc::new(racefree::SystemClock))),
    ];
    for (name, open) in stores {
        let store = open(&url);
        let counter = Counter::new(&store, "task:1").expect("counter");
        counter.next().expect("the server answers");
        let pid = server.pid().expect("running").to_string();
        assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("kill")
        });
        let started = Instant::now();
        let err = counter.next().expect_err("the server died under the request");
        let waited = started.elapsed();
        assert!(killer.join().expect("killer").success());
        assert_eq!(err.code(), "timeout", "{name}: {err}");
        assert!(
            waited < Duration::from_secs(5),
            "{name}: the request timeout, not the close, ended it ({waited:?})"
        );
        server.kill(); // reaps it
        server.start_again();
        // The store recovers on a new connection (the server kept nothing: no persistence).
        assert_eq!(counter.next(), Ok(0), "{name}: the store did not recover");
    }
}

#[test]
fn a_server_that_does_not_answer_is_a_timeout() {
    let server = RedisServer::start(&[]);
    let store = open(&format!("redis://127.0.0.1:{}/0?timeout_ms=300", server.port));
    let counter = Counter::new(&store, "task:1").expect("counter");
    assert_eq!(counter.next(), Ok(0));
    let pid = server.pid().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().expect("kill").success());
    let started = Instant::now();
    let err = counter.peek().expect_err("the server is stopped");
    let waited = started.elapsed();
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().expect("kill").success());
    assert_eq!(err.code(), "timeout", "{err}");
    assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(2), "waited {waited:?}");
    assert_eq!(counter.next(), Ok(1), "the store did not recover");
}

/// Threads issue indexes and tokens while the server is killed (SIGKILL) and restarted
/// (SIGTERM) under them; returns how many indexes and tokens were issued twice, and how many
/// were issued in all.
fn run_through_restarts(server: &mut RedisServer, url: &str) -> (usize, usize, usize) {
    let store = open(url);
    let issued = Mutex::new((Vec::new(), Vec::new()));
    let done = AtomicBool::new(false);
    let progress = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (store, issued, done, progress) = (&store, &issued, &done, &progress);
            scope.spawn(move || {
                let counter = Counter::new(store, "task:1").expect("counter");
                let lock = StartLock::new(store, "tasks").expect("lock");
                let key = format!("k{t}");
                while !done.load(Ordering::Relaxed) {
                    match counter.next() {
                        Ok(index) => issued.lock().unwrap().0.push(index),
                        Err(e) => assert!(e.is_retryable(), "{e}"),
                    }
                    match lock.try_start(&key, Duration::from_secs(60)) {
                        Ok(Some(lease)) => {
                            issued.lock().unwrap().1.push(lease.token());
                            let _ = lease.release();
                        }
                        Ok(None) => {} // a release lost to a restart: the lease holds the key
                        Err(e) => assert!(e.is_retryable(), "{e}"),
                    }
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let wait_for = |n: usize| {
            let target = progress.load(Ordering::Relaxed) + n;
            while progress.load(Ordering::Relaxed) < target {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait_for(2_000);
        server.kill();
        std::thread::sleep(Duration::from_millis(100));
        server.start_again();
        wait_for(2_000);
        server.restart();
        wait_for(2_000);
        done.store(true, Ordering::Relaxed);
    });
    let (indexes, tokens) = issued.into_inner().unwrap();
    let distinct = |v: &[u64]| v.iter().collect::<HashSet<_>>().len();
    (indexes.len() - distinct(&indexes), tokens.len() - distinct(&tokens), indexes.len() + tokens.len())
}

#[test]
fn with_fsync_always_restarts_never_reissue_an_index_or_token() {
    let mut server = RedisServer::start(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = format!("redis://127.0.0.1:{}/0?require_fsync=true&timeout_ms=2000", server.port);
    let (dup_indexes, dup_tokens, issued) = run_through_restarts(&mut server, &url);
    assert!(issued > 6_000, "only {issued} issued");
    assert_eq!((dup_indexes, dup_tokens), (0, 0), "issued twice across a crash and a restart");
}

/// The same run on a server without persistence does reissue indexes: the scenario can fail.
/// Not tokens: they never fall behind the server's clock, so a server that restarted empty
/// still issues larger ones.
#[test]
fn without_persistence_a_crash_reissues_indexes_but_not_tokens() {
    let mut server = RedisServer::start(&[]);
    let url = format!("redis://127.0.0.1:{}/0?timeout_ms=2000", server.port);
    let (dup_indexes, dup_tokens, _) = run_through_restarts(&mut server, &url);
    assert!(dup_indexes > 0, "no index issued twice");
    assert_eq!(dup_tokens, 0, "tokens issued twice");
}

#[test]
fn require_fsync_refuses_a_server_that_does_not_fsync() {
    let url = format!("{}&require_fsync=true", RedisServer::shared().fresh_url());
    let err = racefree::open(&url).expect_err("the shared server has no AOF");
    assert_eq!(err.code(), "backend_unavailable");
    assert!(err.to_string().contains("appendfsync always"), "{err}");
}

#[test]
fn try_start_and_release_are_one_round_trip_each() {
    let server = RedisServer::start(&[]);
    let store = open(&format!("redis://127.0.0.1:{}/0", server.port));
    let lock = StartLock::new(&store, "tasks").expect("lock");
    lock.try_start("warm", Duration::from_secs(5)).expect("start").expect("free").release().expect("release");
    assert!(server.command(&["CONFIG", "RESETSTAT"]).starts_with("+OK"));
    for i in 0..100 {
        lock.try_start(&format!("k{i}"), Duration::from_secs(5))
            .expect("start")
            .expect("free")
            .release()
            .expect("release");
    }
    let stats = server.command(&["INFO", "commandstats"]);
    let calls = |command: &str| common::redis_server::calls(&stats, command);
    assert_eq!(calls("evalsha"), 200, "{stats}");
    assert_eq!(calls("eval") + calls("script|load"), 0, "a script was not called by hash: {stats}");
    // Everything else the server ran came from inside the two scripts, nothing from the client.
    let inside = ["time", "hget", "get", "set", "incr", "hset", "pexpire", "hmget", "del"].map(calls);
    assert_eq!(inside, [200, 0, 100, 100, 0, 100, 100, 200, 100], "{stats}");
}

#[test]
fn bad_urls_and_unreachable_servers_are_clear_errors() {
    let code = |url: &str| racefree::open(url).map(drop).map_err(|e| e.code());
    assert_eq!(code("redis://127.0.0.1:6379/0?namespace=a&bogus=1"), Err("invalid_argument"));
    assert_eq!(code("redis://127.0.0.1:6379/0?timeout_ms=0"), Err("invalid_argument"));
    assert_eq!(code("redis://127.0.0.1:6379/0?require_fsync=maybe"), Err("invalid_argument"));
    assert_eq!(code("redis://127.0.0.1:notaport/0"), Err("invalid_argument"));
    let started = Instant::now();
    assert_eq!(code("redis://127.0.0.1:1/0"), Err("backend_unavailable"));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(code("rediss://127.0.0.1:1/0"), Err("backend_unavailable"));
}

#[test]
fn rediss_verifies_the_server_and_presents_a_client_certificate() {
    let dir = common::certificates("IP:127.0.0.1,DNS:localhost");
    let file = |name: &str| dir.join(name).display().to_string();
    let tls_port = common::test_server::free_port().to_string();
    let server = RedisServer::start(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &file("server.pem"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
        "--tls-auth-clients",
        "yes",
    ]);
    let base = format!("rediss://127.0.0.1:{tls_port}/0?timeout_ms=2000");
    let client = format!("&tls_cert={}&tls_key={}", file("client.pem"), file("client.key"));

    let store = open(&format!("{base}&tls_ca={}{client}", file("ca.pem")));
    let counter = Counter::new(&store, "task:1").expect("counter");
    assert_eq!((counter.next(), counter.next()), (Ok(0), Ok(1)));
    // The plain port of the same server sees the same data: TLS changed the transport only.
    let plain = open(&format!("redis://127.0.0.1:{}/0", server.port));
    assert_eq!(Counter::new(&plain, "task:1").expect("counter").peek(), Ok(2));

    let code = |url: String| racefree::open(&url).map(drop).map_err(|e| e.code());
    // A server certificate from a CA the client does not trust, or no client certificate.
    assert_eq!(code(format!("{base}{client}")), Err("backend_unavailable"), "system trust store");
    assert_eq!(code(format!("{base}&tls_ca={}{client}", file("other-ca.pem"))), Err("backend_unavailable"));
    assert_eq!(
        code(format!("{base}&tls_ca={}", file("ca.pem"))),
        Err("backend_unavailable"),
        "no client cert"
    );
    // Bad options are bad input.
    assert_eq!(code(format!("{base}&tls_ca=/no/such/ca.pem")), Err("invalid_argument"));
    assert_eq!(code(format!("{base}&tls_cert={}", file("client.pem"))), Err("invalid_argument"));
    let plain_url = format!("redis://127.0.0.1:{}/0?tls_ca={}", server.port, file("ca.pem"));
    assert_eq!(code(plain_url), Err("invalid_argument"));
    assert_eq!(code(format!("{base}#insecure")), Err("invalid_argument"));

    // The async store verifies alike, and sees the same data.
    #[cfg(feature = "tokio")]
    {
        let clock = std::sync::Arc::new(racefree::SystemClock);
        let store = common::on_async::open(&format!("{base}&tls_ca={}{client}", file("ca.pem")), clock);
        assert_eq!(Counter::new(&store, "task:1").expect("counter").next(), Ok(2));
        let code_async = |url: String| {
            common::on_async::wait(
                async move { racefree::aio::open(&url).await.map(drop).map_err(|e| e.code()) },
            )
        };
        assert_eq!(code_async(format!("{base}{client}")), Err("backend_unavailable"), "system trust store");
        assert_eq!(code_async(format!("{base}&tls_ca={}", file("ca.pem"))), Err("backend_unavailable"));
    }
}

/// A key holding what racefree could not have written is `corrupt_data`, never a guessed value
/// (a negative counter once answered 0: a duplicate index); a counter at `i64::MAX` is this
/// counter's overflow, told apart by what the key holds (the server says `ERR` for both).
#[test]
fn foreign_values_are_corrupt_data_and_the_largest_counter_is_an_overflow() {
    let server = RedisServer::shared();
    let url = server.fresh_url();
    let store = open(&url);
    let namespace = url.split("namespace=").nth(1).expect("a namespace");
    let key =
        |name: &str, kind: &str| format!("rf:{{{}:{namespace}{}:{name}}}{kind}", namespace.len(), name.len());
    let code = |r: Result<u64, racefree::Error>| r.map_err(|e| e.code());

    server.command(&["SET", &key("negative", "c"), "-5"]);
    assert_eq!(code(store.counter_next("negative")), Err("corrupt_data"));
    server.command(&["SET", &key("text", "c"), "abc"]);
    let text = store.counter_next("text").expect_err("text in a counter");
    assert_eq!(text.code(), "corrupt_data", "{text}");
    assert!(text.to_string().contains("\"abc\""), "{text}");
    server.command(&["SET", &key("largest", "c"), &i64::MAX.to_string()]);
    assert_eq!(code(store.counter_next("largest")), Err("invalid_argument"), "the counter's overflow");
    assert_eq!(server.command(&["GET", &key("largest", "c")]), i64::MAX.to_string(), "changed");
    server.command(&["HSET", &key("hash", "c"), "f", "1"]);
    assert_eq!(code(store.counter_next("hash")), Err("corrupt_data"), "a key of another type");
    assert_eq!(code(store.counter_peek("negative")), Err("corrupt_data"));
    server.command(&["HSET", &key("claims", "i"), "e1", "-3"]);
    assert_eq!(store.counter_index_of("claims", "e1").map_err(|e| e.code()), Err("corrupt_data"));
    assert_eq!(store.counter_claim("claims", "e1").map_err(|e| e.code()), Err("corrupt_data"));
    server.command(&["HSET", &key("pods", "r:p"), "v", "{not json", "ver", "1", "f", "0"]);
    assert_eq!(store.record_get("pods", "p").map_err(|e| e.code()), Err("corrupt_data"));
    server.command(&["HSET", &key("pods", "r:q"), "v", "1", "ver", "-2", "f", "0"]);
    assert_eq!(store.record_get("pods", "q").map_err(|e| e.code()), Err("corrupt_data"));
}

/// A failure keeps the client's own error as its source.
#[test]
fn an_unreachable_server_keeps_the_clients_error_as_the_source() {
    let port = common::test_server::free_port();
    let err =
        racefree::open(&format!("redis://127.0.0.1:{port}/0?timeout_ms=2000")).expect_err("nothing listens");
    assert_eq!(err.code(), "backend_unavailable");
    let source = std::error::Error::source(&err).expect("the client's error is kept");
    assert!(source.to_string().to_lowercase().contains("refused"), "{source}");
}

/// A server whose script cache was emptied (a restart, a failover, `SCRIPT FLUSH`) answers
/// `NOSCRIPT`: the store loads the script and sends it again, and the call succeeds.
#[test]
fn scripts_are_loaded_again_after_the_server_forgot_them() {
    let server = RedisServer::shared();
    let store = open(&server.fresh_url());
    let lock = StartLock::new(&store, "tasks").expect("lock");
    let first = lock.try_start("k", Duration::from_secs(30)).expect("start").expect("free");
    assert_eq!(server.command(&["SCRIPT", "FLUSH"]), "+OK\r\n");
    let loads = |server: &RedisServer| calls(&server.command(&["INFO", "commandstats"]), "script|load");
    let before = loads(server);
    first.release().expect("release after the flush");
    let second = lock.try_start("k", Duration::from_secs(30)).expect("start").expect("free again");
    assert!(second.token() > first.token());
    assert!(loads(server) >= before + 2, "the release and grant scripts were not loaded again");
}

/// The protocol as a host with its own client drives it (here redis-rs, plain `EVAL`): a grant
/// and a mark sent twice — a client resending after a lost reply, as ioredis does after a
/// reconnect — are answered alike, where a second request is answered "held" and `Duplicate`.
#[test]
fn replayed_grants_marks_and_record_writes_get_the_same_answer() {
    use racefree::store::redis::protocol::{Command, Layout, Now, Reply, Step};
    use racefree::store::{LeaseGrant, MarkOutcome};

    fn reply(value: redis::Value) -> Reply {
        match value {
            redis::Value::Nil => Reply::Nil,
            redis::Value::Int(n) => Reply::Int(n),
            redis::Value::BulkString(bytes) => Reply::Data(bytes),
            redis::Value::Array(items) => Reply::Array(items.into_iter().map(reply).collect()),
            redis::Value::SimpleString(text) => Reply::Status(text),
            redis::Value::Okay => Reply::Status("OK".into()),
            other => panic!("an unexpected reply {other:?}"),
        }
    }
    fn run<T>(conn: &mut redis::Connection, step: Step<T>) -> T {
        attempt(conn, step).expect("an answer")
    }
    fn attempt<T>(conn: &mut redis::Connection, mut step: Step<T>) -> racefree::Result<T> {
        loop {
            match step {
                Step::Done(result) => return result,
                Step::Send(request, then) => {
                    let mut cmd = match request.command {
                        Command::Script(script) => {
                            let mut cmd = redis::cmd("EVAL");
                            cmd.arg(&script.text).arg(request.keys.len());
                            cmd
                        }
                        Command::Plain(name) => redis::cmd(name),
                    };
                    cmd.arg(&request.keys).arg(&request.args);
                    step = then(reply(cmd.query(conn).expect("the server answers")));
                }
            }
        }
    }

    let server = RedisServer::shared();
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}/0", server.port))
        .and_then(|client| client.get_connection())
        .expect("a connection");
    let layout = Layout::new(&format!("replay-{}", std::process::id()));
    let now = Now { local_ms: 1_000, judge_by_local: false };
    let grant = |conn: &mut redis::Connection, request: &str| -> Option<LeaseGrant> {
        run(conn, layout.lease_try_grant("lock", "k", 30_000, now, request))
    };

    let first = grant(&mut conn, "req-1").expect("a fresh key is free");
    let replayed = grant(&mut conn, "req-1").expect("the same request gets its lease again");
    assert_eq!(replayed.token, first.token, "a replay is not granted a new token");
    assert!(replayed.deadline_ms <= first.deadline_ms);
    assert_eq!(grant(&mut conn, "req-2"), None, "another request finds the key held");
    assert_eq!(grant(&mut conn, ""), None, "a request without an id finds the key held");
    run(&mut conn, layout.lease_release("lock", "k", first.token, now));
    let next = grant(&mut conn, "req-3").expect("released");
    assert!(next.token > first.token);
    assert_eq!(grant(&mut conn, "req-1"), None, "an old request replayed late finds the key held");

    let mark = |conn: &mut redis::Connection, position: u32, request: &str| -> MarkOutcome {
        run(conn, layout.guard_mark("guard", "s1", position, 60_000, now, request))
    };
    assert_eq!(mark(&mut conn, 0, "m-1"), MarkOutcome::First);
    assert_eq!(mark(&mut conn, 0, "m-1"), MarkOutcome::First, "the same mark replayed");
    assert_eq!(mark(&mut conn, 0, "m-2"), MarkOutcome::Duplicate, "another caller's mark");
    assert_eq!(mark(&mut conn, 0, ""), MarkOutcome::Duplicate);
    assert_eq!(mark(&mut conn, 1, "m-3"), MarkOutcome::First);
    assert_eq!(mark(&mut conn, 0, "m-1"), MarkOutcome::Duplicate, "no longer the last mark");
    assert_eq!(mark(&mut conn, 1, "m-3"), MarkOutcome::First);

    // A write resent (its reply lost) is answered with the version it wrote, not a conflict with
    // itself: an update reading that as a conflict would apply its change twice.
    let put = |conn: &mut redis::Connection, expected: Option<u64>, request: &str| {
        attempt(
            conn,
            layout.record_put("pods", "web-1", &serde_json::json!({ "n": request }), expected, None, request),
        )
    };
    assert_eq!(put(&mut conn, None, "w-1"), Ok(1));
    assert_eq!(put(&mut conn, None, "w-1"), Ok(1), "a create replayed");
    assert!(matches!(put(&mut conn, None, "w-2"), Err(racefree::Error::Conflict { .. })), "another create");
    assert_eq!(put(&mut conn, Some(1), "w-3"), Ok(2));
    assert_eq!(put(&mut conn, Some(1), "w-3"), Ok(2), "an update replayed");
    assert!(
        matches!(put(&mut conn, Some(1), "w-4"), Err(racefree::Error::Conflict { .. })),
        "another update"
    );
    assert_eq!(put(&mut conn, Some(2), "w-5"), Ok(3));
    assert!(
        matches!(put(&mut conn, Some(1), "w-3"), Err(racefree::Error::Conflict { .. })),
        "a replay after another write is a conflict (the write it repeats is not the latest)"
    );
    let read = run(&mut conn, layout.record_get("pods", "web-1")).expect("a record");
    assert_eq!((read.value, read.version), (serde_json::json!({ "n": "w-5" }), 3));
}
