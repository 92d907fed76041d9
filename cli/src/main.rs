//! `racefree`: the operators' command line — see what a store holds, and clear expired entries.
//!
//! ```text
//! racefree inspect <url>   counters, leases (holder token, time left), guards and records
//! racefree inspect --json <url>   the same as one JSON object, for scripts
//! racefree sweep <url>     remove expired leases and marks now
//! racefree migrate <url>   create racefree's tables and functions in a PostgreSQL database
//! ```
//! Exit status: 0 on success, 1 when the store cannot be reached, 2 for a bad command or URL.

use std::process::ExitCode;

use racefree::{Clock, CounterEntry, Error, LeaseEntry, RecordEntry, StreamEntry, SystemClock};

const USAGE: &str =
    "usage: racefree inspect [--json] <url> | racefree sweep <url> | racefree migrate <postgres-url>
  <url>: sqlite:///abs/path.db[?namespace=...], redis://host:port/db[?namespace=...],
         postgres://user@host:port/db[?namespace=...], memory://";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `json`: `inspect --json` (the flag before or after the URL).
    let (command, url, json) = match args.as_slice() {
        [command, url] if ["inspect", "sweep", "migrate"].contains(&command.as_str()) => {
            (command.as_str(), url.as_str(), false)
        }
        [inspect, flag, url] | [inspect, url, flag] if inspect == "inspect" && flag == "--json" => {
            ("inspect", url.as_str(), true)
        }
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(command, url, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("racefree {command}: {err} [{}]", err.code());
            ExitCode::from(if matches!(err, Error::InvalidArgument { .. } | Error::InvalidKey { .. }) {
                2
            } else {
                1
            })
        }
    }
}

fn run(command: &str, url: &str, json: bool) -> Result<(), Error> {
    if command == "migrate" {
        return migrate(url);
    }
    let store = racefree::open(url)?;
    if command == "sweep" {
        println!("removed {} expired entries", store.sweep()?);
        return Ok(());
    }
    let inventory = store.inspect()?;
    let now = SystemClock.now_ms();
    if json {
        println!("{}", inventory_json(store.namespace(), &inventory, now));
        return Ok(());
    }
    let namespace = if store.namespace().is_empty() { "(none)" } else { store.namespace() };
    println!("namespace: {namespace}");
    println!("\ncounters ({})", inventory.counters.len());
    for CounterEntry { counter, next, claims } in &inventory.counters {
        println!("  {counter:<40} next={next:<10} claims={claims}");
    }
    println!("\nleases ({})", inventory.leases.len());
    for LeaseEntry { lock, key, token, deadline_ms } in &inventory.leases {
        let left = deadline_ms.saturating_sub(now) as f64 / 1000.0;
        println!("  {lock:<20} {key:<30} token={token:<8} time left={left:.1}s");
    }
    println!("\nguards ({} streams)", inventory.streams.len());
    for StreamEntry { guard, stream, marked, expires_at_ms } in &inventory.streams {
        let left = expires_at_ms.saturating_sub(now) as f64 / 1000.0;
        println!("  {guard:<20} {stream:<30} events marked={marked:<3} forgotten in {left:.0}s");
    }
    println!("\nrecords ({})", inventory.records.len());
    for RecordEntry { space, key, version } in &inventory.records {
        println!("  {space:<20} {key:<30} version={version}");
    }
    Ok(())
}

/// The inventory as one JSON object: the namespace, the time it was read (`now_ms`, this
/// machine's wall clock), how many of each kind, and every entry with the time it has left.
fn inventory_json(namespace: &str, inventory: &racefree::Inventory, now: u64) -> serde_json::Value {
    use serde_json::json;
    let left = |until: u64| until.saturating_sub(now);
    json!({
        "namespace": namespace,
        "now_ms": now,
        "counts": {
            "counters": inventory.counters.len(),
            "claims": inventory.counters.iter().map(|c| c.claims).sum::<u64>(),
            "leases": inventory.leases.len(),
            "streams": inventory.streams.len(),
            "records": inventory.records.len(),
        },
        "counters": inventory.counters.iter().map(|CounterEntry { counter, next, claims }| {
            json!({ "counter": counter, "next": next, "claims": claims })
        }).collect::<Vec<_>>(),
        "leases": inventory.leases.iter().map(|LeaseEntry { lock, key, token, deadline_ms }| {
            json!({ "lock": lock, "key": key, "token": token, "deadline_ms": deadline_ms, "left_ms": left(*deadline_ms) })
        }).collect::<Vec<_>>(),
        "streams": inventory.streams.iter().map(|StreamEntry { guard, stream, marked, expires_at_ms }| {
            json!({ "guard": guard, "stream": stream, "marked": marked, "expires_at_ms": expires_at_ms,
                    "left_ms": left(*expires_at_ms) })
        }).collect::<Vec<_>>(),
        "records": inventory.records.iter().map(|RecordEntry { space, key, version }| {
            json!({ "space": space, "key": key, "version": version })
        }).collect::<Vec<_>>(),
    })
}

/// Creates (or checks) racefree's schema in the PostgreSQL database at `url`, as a role that may
/// create tables, so the application's role needs none of that privilege.
fn migrate(url: &str) -> Result<(), Error> {
    let racefree::store::StoreUrl::Postgres { server, options } = racefree::store::StoreUrl::parse(url)?
    else {
        return Err(Error::InvalidArgument {
            reason: "racefree migrate takes a postgres:// URL: the other stores need no migration".to_owned(),
        });
    };
    let version = racefree::PostgresStore::migrate(&server, options)?;
    println!("racefree schema version {version} is in place");
    Ok(())
}
