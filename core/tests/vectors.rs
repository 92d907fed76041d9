//! The Rust runner of the shared scenarios in `tests/vectors/*.json`; the Python and JavaScript
//! runners read the same files and must give the same results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use racefree::{
    Counter, Error, EventGuard, GuardOptions, Lease, ManualClock, MemoryStore, Records, SharedClock,
    SharedStore, StartLock, UpdateOptions,
};
use serde_json::{json, Map, Value};

struct Runner {
    clock: Arc<ManualClock>,
    store: SharedStore,
    leases: HashMap<String, Lease>,
}

fn text<'a>(step: &'a Value, field: &str) -> &'a str {
    step[field].as_str().unwrap_or_else(|| panic!("step {step} needs a string `{field}`"))
}

fn number(step: &Value, field: &str) -> u64 {
    step[field].as_u64().unwrap_or_else(|| panic!("step {step} needs a number `{field}`"))
}

/// A duration in milliseconds, fractional or past what a `Duration` holds (then `Duration::MAX`).
fn millis(step: &Value, field: &str) -> Duration {
    let ms = step[field].as_f64().unwrap_or_else(|| panic!("step {step} needs a number `{field}`"));
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
}

/// Replaces `{"$repeat": [text, n]}` with the text repeated; other `{"$": …}` values only appear
/// in steps for other languages.
fn decode(value: &Value) -> Value {
    match value {
        Value::Object(map) => match map.get("$repeat").and_then(Value::as_array).map(Vec::as_slice) {
            Some([text, n]) => {
                json!(text.as_str().expect("text").repeat(n.as_u64().expect("count") as usize))
            }
            _ => Value::Object(map.iter().map(|(k, v)| (k.clone(), decode(v))).collect()),
        },
        Value::Array(items) => Value::Array(items.iter().map(decode).collect()),
        other => other.clone(),
    }
}

impl Runner {
    fn new() -> Self {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let shared: SharedClock = clock.clone();
        Self { clock, store: Arc::new(MemoryStore::with_clock(shared)), leases: HashMap::new() }
    }

    fn guard(&self, step: &Value) -> Result<EventGuard, Error> {
        let events: Vec<&str> =
            step["events"].as_array().expect("events").iter().filter_map(Value::as_str).collect();
        let options = match step.get("retention_ms") {
            Some(_) => GuardOptions::retention(millis(step, "retention_ms")),
            None => GuardOptions::default(),
        };
        EventGuard::with_options(&self.store, text(step, "guard"), &events, options)
    }

    fn lease(&self, step: &Value) -> &Lease {
        let name = text(step, "lease");
        self.leases.get(name).unwrap_or_else(|| panic!("no lease saved as {name:?}"))
    }

    fn run(&mut self, step: &Value) -> Result<Value, Error> {
        let counter = || Counter::new(&self.store, text(step, "counter"));
        let records = || Records::new(&self.store, text(step, "space"));
        let lock = || StartLock::new(&self.store, text(step, "lock"));
        let ttl = || millis(step, "ttl_ms");
        let optional = |field: &str| step.get(field).and_then(Value::as_u64);
        Ok(match text(step, "op") {
            "clock.advance" => {
                self.clock.advance(Duration::from_millis(number(step, "ms")));
                Value::Null
            }
            "store.sweep" => json!(self.store.sweep()?),
            "store.entries" => json!(self.store.stats()?.entries),
            "counter.next" => json!(counter()?.next()?),
            "counter.peek" => json!(counter()?.peek()?),
            "counter.claim" => {
                let claim = counter()?.claim(text(step, "id"))?;
                json!({ "index": claim.index, "is_new": claim.is_new })
            }
            "counter.index_of" => json!(counter()?.index_of(text(step, "id"))?),
            "counter.set" => json!(counter()?.set(number(step, "value"))?),
            "counter.reset" => json!(counter()?.reset()?),
            "guard.mark" => json!(match self.guard(step)?.mark(text(step, "stream"), text(step, "event"))? {
                racefree::Mark::First => "first",
                racefree::Mark::Duplicate => "duplicate",
            }),
            "guard.is_marked" => {
                json!(self.guard(step)?.is_marked(text(step, "stream"), text(step, "event"))?)
            }
            "guard.forget" => json!(self.guard(step)?.forget(text(step, "stream"))?),
            "lock.try_start" => match lock()?.try_start(text(step, "key"), ttl())? {
                Some(lease) => {
                    let token = lease.token();
                    if let Some(name) = step.get("save").and_then(Value::as_str) {
                        self.leases.insert(name.to_owned(), lease);
                    }
                    json!({ "token": token })
                }
                None => Value::Null,
            },
            "lock.is_held" => json!(lock()?.is_held(text(step, "key"))?),
            "lease.renew" => json!(self.lease(step).renew(ttl())?),
            "lease.release" => json!(self.lease(step).release()?),
            "keeper.options" => {
                let mut options = racefree::KeeperOptions::new(ttl())?;
                if step.get("renew_every_ms").is_some() {
                    options = options.with_renew_every(millis(step, "renew_every_ms"))?;
                }
                if step.get("max_hold_ms").is_some() {
                    options = options.with_max_hold(millis(step, "max_hold_ms"))?;
                }
                racefree::Coordinator::new(&self.store, text(step, "lock"), options)?;
                Value::Null
            }
            "store.open_redis" => {
                // Checked before any connection: no server listens on port 1.
                let options: Vec<String> =
                    [("replicas", "replicas"), ("replicas_timeout_ms", "replicas_timeout_ms")]
                        .iter()
                        .filter_map(|(field, option)| {
                            step.get(*field).map(|value| format!("{option}={value}"))
                        })
                        .collect();
                racefree::open(&format!("redis://127.0.0.1:1/0?{}", options.join("&")))?;
                Value::Null
            }
            "records.get" => match records()?.get(text(step, "key"))? {
                Some(v) => json!({ "value": v.value, "version": v.version }),
                None => Value::Null,
            },
            "records.put" => {
                let (key, value) = (text(step, "key"), &step["value"]);
                let records = records()?;
                json!(match optional("fencing_token") {
                    Some(token) => records.put_fenced(key, value, optional("expected_version"), token)?,
                    None => records.put(key, value, optional("expected_version"))?,
                })
            }
            "records.update" => {
                let fields = step["set"].as_object().expect("set").clone();
                let options =
                    optional("fencing_token").map_or_else(UpdateOptions::default, UpdateOptions::fenced);
                let updated = records()?.try_update_with(text(step, "key"), &options, |current| {
                    let mut object = current.and_then(Value::as_object).cloned().unwrap_or_else(Map::new);
                    object.extend(fields.clone());
                    Ok::<_, Error>(Value::Object(object))
                })?;
                json!({ "value": updated.value, "version": updated.version })
            }
            "records.delete" => {
                json!(records()?.delete(text(step, "key"), optional("expected_version"))?)
            }
            other => panic!("unknown op {other:?}"),
        })
    }
}

#[test]
fn shared_scenarios_give_the_expected_results() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    // The scenarios to run are the ones index.json names; the folder must hold exactly those.
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).expect("index.json"))
            .expect("JSON");
    let named: Vec<String> = index["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|n| n.as_str().expect("name").to_owned())
        .collect();
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/vectors")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json") && name != "index.json")
        .collect();
    found.sort();
    let mut sorted_named = named.clone();
    sorted_named.sort();
    assert_eq!(found, sorted_named, "the folder holds exactly the scenarios index.json names");
    let files: Vec<PathBuf> = named.iter().map(|name| dir.join(name)).collect();
    let (mut steps_run, mut skipped) = (0, 0);
    for file in files {
        let scenario: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
        let mut runner = Runner::new();
        for (i, step) in scenario["steps"].as_array().expect("steps").iter().enumerate() {
            if step.get("only").is_some_and(|only| !only.as_array().expect("only").contains(&json!("rust"))) {
                skipped += 1;
                continue;
            }
            // A build without the Redis store refuses every redis:// URL, good or bad alike.
            if step["op"] == "store.open_redis" && !cfg!(feature = "redis") {
                skipped += 1;
                continue;
            }
            let step = &decode(step);
            let outcome = runner.run(step);
            let where_ = format!("{} step {i} ({})", file.display(), step["op"]);
            match (step.get("error"), outcome) {
                (Some(code), Err(err)) => assert_eq!(err.code(), code, "{where_}: {err}"),
                (Some(code), Ok(value)) => panic!("{where_}: expected error {code}, got {value}"),
                (None, Err(err)) => panic!("{where_}: unexpected error {err}"),
                (None, Ok(value)) => {
                    if let Some(expected) = step.get("expect") {
                        assert_eq!(&value, expected, "{where_}");
                    }
                }
            }
            steps_run += 1;
        }
    }
    eprintln!("{steps_run} steps run, {skipped} steps only for other languages");
    assert!(steps_run > 50);
}
