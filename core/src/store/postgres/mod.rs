//! The PostgreSQL store: every operation is one statement, or one call of one server-side
//! function, in one READ COMMITTED transaction (see [`schema`] for the statements and why).
//!
//! **Connections.** The store runs the async client (`tokio-postgres`) on a runtime of its own,
//! one worker thread, and each call waits for its result on a plain channel: so the store is
//! callable from any thread, a tokio worker included (the sync `postgres` crate would start a
//! runtime of its own there and panic). Up to `pool_size` connections are opened as needed and
//! kept; a call that finds none free waits for one, within the timeout.
//!
//! **PgBouncer.** By default statements are unnamed (`query_typed`, parsed and planned on every
//! call), each call's `BEGIN ISOLATION LEVEL READ COMMITTED … COMMIT` is sent in one round trip,
//! and nothing is kept in the session (no `SET`, no session advisory locks): transaction pooling
//! is safe. `prepare_statements` prepares each statement once per connection instead (faster,
//! for a direct connection or a pooler that tracks prepared statements): behind a transaction
//! pooler that does not, a name prepared on one server connection is missing on another, or
//! names another client's statement there.
//!
//! **Time.** Handed the wall clock ([`SystemClock`](crate::SystemClock)), deadlines are judged
//! by the server's own clock (`clock_timestamp()`, read after the row lock is held), so client
//! clocks don't matter; handed any other clock (a [`ManualClock`](crate::ManualClock) in tests),
//! by that clock.

#[cfg(feature = "postgres")]
mod blocking;
mod calls;
#[cfg(feature = "postgres")]
mod engine;
mod hosted;
#[cfg(all(feature = "postgres", feature = "tokio"))]
mod nonblocking;
#[cfg(feature = "postgres")]
mod options;
pub mod protocol;
pub mod schema;
#[cfg(feature = "postgres")]
mod tls;

use crate::error::{Error, Result};

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use blocking::PostgresStore;
pub use hosted::{HostedPostgresStore, Transaction, TransactionError, Transport};
#[cfg(all(feature = "postgres", feature = "tokio"))]
#[doc(hidden)] // Documented as `racefree::aio::PostgresStore`.
pub use nonblocking::AsyncPostgresStore;
#[cfg(feature = "postgres")]
pub(crate) use options::check_options;
#[cfg(feature = "postgres")]
pub use options::{PostgresOptions, PostgresTls};
pub use schema::SCHEMA_VERSION;

/// Whether a store may open on the schema version [`prepare_schema`] found. A newer version is
/// refused before anything is written.
fn schema_verdict(found: Option<i64>, create: bool) -> Result<()> {
    match found {
        Some(SCHEMA_VERSION) => Ok(()),
        None | Some(1) if create => Ok(()),
        None => Err(Error::unavailable(
            "postgres: racefree's tables are missing in this database; create them with \
             `racefree migrate <url>` (or open without create_schema=false)",
        )),
        Some(1) => Err(Error::unavailable(format!(
            "postgres: the database holds racefree schema version 1; this build reads \
             {SCHEMA_VERSION}: upgrade it with `racefree migrate <url>` (or open without \
             create_schema=false; nothing was written)"
        ))),
        Some(other) => Err(Error::unavailable(format!(
            "postgres: the database holds racefree schema version {other}; this build reads \
             {SCHEMA_VERSION} (upgrade racefree; nothing was written)"
        ))),
    }
}
