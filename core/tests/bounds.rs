//! `max_keys` bounds the memory store under a flood of 10^6 attacker-chosen keys, and the
//! resident memory shows it. One test in its own binary, so no other test shares the process
//! whose memory is measured.

use std::sync::Arc;
use std::time::Duration;

use racefree::{MemoryStore, SharedStore, Store};

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// An attacker's keys: all distinct, each of the largest size a key may have (1,024 bytes).
fn attacker_key(i: u64) -> String {
    let mut key = format!("{i:016x}");
    key.push_str(&"x".repeat(racefree::MAX_KEY_BYTES - key.len()));
    key
}

#[test]
fn a_flood_of_a_million_keys_stays_within_max_keys() {
    const MAX_KEYS: usize = 10_000;
    const FLOOD: u64 = 1_000_000;
    let store = Arc::new(MemoryStore::builder().max_keys(MAX_KEYS).build().expect("store"));
    let shared: SharedStore = store.clone();
    let victim = racefree::Counter::new(&shared, "victim").expect("counter");
    assert_eq!(victim.next(), Ok(0));
    let lock = racefree::StartLock::new(&shared, "tasks").expect("lock");
    let held = lock.try_start("victim", Duration::from_secs(600)).expect("start").expect("free");

    let rss_before = status_kib("VmRSS:");
    let mut refused = 0u64;
    for i in 0..FLOOD {
        let key = attacker_key(i);
        // Every kind of entry an attacker can make someone create: counters, claims, streams,
        // leases, records.
        let result = match i % 5 {
            0 => store.counter_next(&key).map(drop),
            1 => store.counter_claim("victim", &key).map(drop),
            2 => store.guard_mark("g", &key, 0, 3_600_000).map(drop),
            3 => store.lease_try_grant("tasks", &key, 600_000).map(drop),
            _ => store.record_put("r", &key, &serde_json::json!(i), None, None).map(drop),
        };
        match result {
            Ok(()) => {}
            Err(err) => {
                assert_eq!(err.code(), "capacity_exceeded", "{err}");
                refused += 1;
            }
        }
    }
    let peak_growth_mib = status_kib("VmHWM:").saturating_sub(rss_before) as f64 / 1024.0;
    let entries = store.stats().expect("stats").entries;
    eprintln!(
        "{FLOOD} keys of {} bytes against max_keys {MAX_KEYS}: {refused} refused, {entries} entries held, \
         peak resident memory grew {peak_growth_mib:.1} MiB (from {:.1} MiB)",
        racefree::MAX_KEY_BYTES,
        rss_before as f64 / 1024.0
    );
    assert_eq!(entries, MAX_KEYS as u64, "the store holds more or fewer entries than its bound");
    assert_eq!(refused, FLOOD - (MAX_KEYS as u64 - 2), "every key past the bound is refused");
    // 10,000 entries of ~1 KiB each, plus tables: far from the ~1 GiB a million such keys take.
    assert!(peak_growth_mib < 64.0, "peak resident memory grew {peak_growth_mib:.1} MiB");

    // What was there before the flood still works, and a full store still answers.
    let next = victim.peek().expect("peek");
    assert_eq!(victim.next(), Ok(next), "an existing counter stopped working");
    assert!(held.renew(Duration::from_secs(600)).is_ok());
    assert_eq!(victim.claim("new-id").map_err(|e| e.code()), Err("capacity_exceeded"));
    held.release().expect("release");
    assert!(
        lock.try_start("victim", Duration::from_secs(1)).expect("start").is_some(),
        "a freed slot is usable"
    );
}
