//! A tokio host: 200 tasks on a multi-thread runtime start one key through the async
//! coordinator on the store named by a URL (default `memory://`), for a few rounds each. Prints
//! how many runs there were and the most that ran at once, which must be 1.
//!
//! ```text
//! cargo run --example tokio_host --features tokio,redis -- redis://127.0.0.1:6379
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use racefree::{aio, KeeperOptions};

const TASKS: usize = 200;
const ROUNDS: usize = 20;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "memory://".to_owned());
    let store = aio::open(&url).await?;
    let tasks =
        Arc::new(aio::Coordinator::new(&store, "reports", KeeperOptions::new(Duration::from_secs(10))?)?);
    let (running, most, runs) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    let starters: Vec<_> = (0..TASKS)
        .map(|task| {
            let (tasks, running, most, runs) = (tasks.clone(), running.clone(), most.clone(), runs.clone());
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let (running, most, runs) = (running.clone(), most.clone(), runs.clone());
                    let started = tasks
                        .start("report:7", move |_holding| async move {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(2)).await; // the work
                            running.fetch_sub(1, Ordering::SeqCst);
                        })
                        .await?;
                    if let Some(run) = started {
                        let finished = run.join().await;
                        if let Some(lost) = finished.lost {
                            return Err(lost);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(1 + task as u64 % 7)).await;
                    // spread out
                }
                Ok::<_, racefree::Error>(())
            })
        })
        .collect();
    for starter in starters {
        starter.await??;
    }
    let (runs, most) = (runs.load(Ordering::SeqCst), most.load(Ordering::SeqCst));
    println!("tokio host on {url}: {TASKS} tasks, {runs} runs, most at once: {most}");
    if most != 1 || runs == 0 {
        return Err(format!("expected runs, one at a time; got {runs} runs, {most} at once").into());
    }
    Ok(())
}
