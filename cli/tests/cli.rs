//! The operators' CLI against a real SQLite file and a real Redis server.

/// The core's real Redis server for tests (it calls `super::scratch_path`).
#[path = "../../core/tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

/// The core's real PostgreSQL server for tests.
#[path = "../../core/tests/common/postgres_server.rs"]
#[allow(dead_code)]
mod postgres_server;

/// Spawns, readies and stops the test servers by PID, also after this process exits (both server
/// modules use it).
#[path = "../../core/tests/common/test_server.rs"]
#[allow(dead_code)]
mod test_server;

/// A fresh file path under the system's temp folder, unique to this process and call.
fn scratch_path(name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!("racefree-cli-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(format!("{}-{name}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

use std::process::Command;
use std::time::Duration;

use racefree::{Counter, EventGuard, Records, StartLock};
use serde_json::json;

fn racefree(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_racefree")).args(args).output().expect("run the CLI");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn sqlite_inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones() {
    let url = format!("sqlite://{}", scratch_path("cli.db").display());
    inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones(&url, 1);
}

/// On Redis the server removes the expired lease itself (PX), so the sweep finds nothing left.
#[test]
fn redis_inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones() {
    let url = redis_server::RedisServer::shared().fresh_url();
    inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones(&url, 0);
}

#[test]
fn postgres_inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones() {
    let url = postgres_server::PostgresServer::shared().fresh_url();
    inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones(&url, 1);
}

/// `migrate` creates the schema a `create_schema=false` store requires, and is idempotent.
#[test]
fn postgres_migrate_creates_the_schema_once() {
    let server = postgres_server::PostgresServer::shared();
    server.psql("postgres", "CREATE DATABASE cli_migrate");
    let url = format!("postgres://racefree@127.0.0.1:{}/cli_migrate", server.port);
    let strict = format!("{url}?create_schema=false");
    let (code, _, err) = racefree(&["inspect", &strict]);
    assert_eq!(code, 1);
    assert!(err.contains("racefree migrate"), "{err}");
    for _ in 0..2 {
        let (code, out, err) = racefree(&["migrate", &url]);
        assert_eq!((code, out.trim()), (0, "racefree schema version 2 is in place"), "{err}");
    }
    let (code, out, err) = racefree(&["inspect", &strict]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("counters (0)"), "{out}");
    let (code, _, err) = racefree(&["migrate", "memory://"]);
    assert_eq!(code, 2);
    assert!(err.contains("postgres://"), "{err}");
}

fn inspect_shows_a_stuck_lease_and_sweep_clears_expired_ones(url: &str, expired: u64) {
    let store = racefree::open(url).expect("open");
    Counter::new(&store, "task:42").unwrap().claim("exec-a").unwrap();
    let stuck = StartLock::new(&store, "tasks")
        .unwrap()
        .try_start("report:7", Duration::from_secs(600))
        .unwrap()
        .unwrap();
    StartLock::new(&store, "tasks").unwrap().try_start("short", Duration::from_millis(1)).unwrap().unwrap();
    EventGuard::new(&store, "streams", &["started", "ended"]).unwrap().mark("s1", "started").unwrap();
    Records::new(&store, "pods").unwrap().put("web-1", &json!({"phase": "Running"}), None).unwrap();
    std::thread::sleep(Duration::from_millis(5));

    let (code, out, err) = racefree(&["inspect", url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("task:42") && out.contains("claims=1"), "{out}");
    assert!(out.contains("report:7") && out.contains(&format!("token={}", stuck.token())), "{out}");
    assert!(!out.contains("short"), "an expired lease was listed:\n{out}");
    assert!(
        out.contains("streams") && out.contains("s1") && out.contains("web-1") && out.contains("version=1"),
        "{out}"
    );

    // The same for scripts: one JSON object, with the counts.
    let (code, out, err) = racefree(&["inspect", "--json", url]);
    assert_eq!(code, 0, "{err}");
    let inventory: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let counts = &inventory["counts"];
    assert_eq!(
        (&counts["counters"], &counts["claims"], &counts["leases"], &counts["streams"], &counts["records"]),
        (&json!(1), &json!(1), &json!(1), &json!(1), &json!(1)),
        "{out}"
    );
    let lease = &inventory["leases"][0];
    assert_eq!(
        (&lease["lock"], &lease["key"], &lease["token"]),
        (&json!("tasks"), &json!("report:7"), &json!(stuck.token()))
    );
    let left = lease["left_ms"].as_u64().expect("left_ms");
    assert!(left > 590_000 && left <= 600_000, "{lease}");
    assert_eq!(inventory["counters"][0], json!({ "counter": "task:42", "next": 1, "claims": 1 }));
    assert_eq!(inventory["records"][0], json!({ "space": "pods", "key": "web-1", "version": 1 }));
    assert_eq!(
        (&inventory["streams"][0]["stream"], &inventory["streams"][0]["marked"]),
        (&json!("s1"), &json!(1))
    );
    let (code, flag_last, _) = racefree(&["inspect", url, "--json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&flag_last).expect("JSON")["counts"], *counts);

    let (code, out, _) = racefree(&["sweep", url]);
    assert_eq!((code, out.trim()), (0, format!("removed {expired} expired entries").as_str()));
    let (code, out, _) = racefree(&["inspect", url]);
    assert_eq!(code, 0);
    assert!(
        out.contains("report:7"),
        "sweep removed a live lease:
{out}"
    );
}

#[test]
fn bad_commands_and_urls_are_explained() {
    let (code, _, err) = racefree(&["inspect"]);
    assert_eq!(code, 2);
    assert!(err.contains("usage"), "{err}");
    let (code, _, err) = racefree(&["inspect", "sqlite://relative.db"]);
    assert_eq!(code, 2);
    assert!(err.contains("absolute") && err.contains("invalid_argument"), "{err}");
    let (code, _, err) = racefree(&["inspect", "sqlite:///no/such/dir/x.db"]);
    assert_eq!(code, 1);
    assert!(err.contains("backend_unavailable"), "{err}");
    let (code, _, err) = racefree(&["inspect", "--yaml", "memory://"]);
    assert_eq!(code, 2);
    assert!(err.contains("usage"), "{err}");
    let (code, _, err) = racefree(&["inspect", "--json", "sqlite://relative.db"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("racefree inspect: ") && err.contains("invalid_argument"), "{err}");
    let (code, _, err) = racefree(&["sweep", "redis://127.0.0.1:1/0"]);
    assert_eq!(code, 1);
    assert!(err.contains("backend_unavailable"), "{err}");
}
