//! One process of the cross-language tests: the Node suites race it (and a Python process) on
//! one Redis namespace or PostgreSQL schema. Takes `count` indexes of counter `shared`, marks
//! `started` of stream `s` on guard `streams`, and reads the holder of key `report` of lock
//! `tasks`; prints the indexes (a JSON array), `True` when its mark was the first, and the
//! holder's token — as the Python process does, line for line.
//!
//! ```text
//! cargo run --example interop --features redis,postgres -- redis://127.0.0.1:6379?namespace=app 50
//! ```

use racefree::{Counter, EventGuard, Mark, StartLock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(count)) = (args.next(), args.next()) else {
        return Err("usage: interop <url> <count>".into());
    };
    let store = racefree::open(&url)?;
    let counter = Counter::new(&store, "shared")?;
    let indexes = (0..count.parse::<usize>()?).map(|_| counter.next()).collect::<Result<Vec<_>, _>>()?;
    println!("{}", serde_json::to_string(&indexes)?);
    let first = EventGuard::new(&store, "streams", &["started"])?.mark("s", "started")? == Mark::First;
    println!("{}", if first { "True" } else { "False" });
    let holder = StartLock::new(&store, "tasks")?.holder("report")?;
    println!("{}", holder.map_or_else(|| "None".to_owned(), |grant| grant.token.to_string()));
    Ok(())
}
