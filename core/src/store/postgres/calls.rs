//! Every operation of the PostgreSQL store as a planned [`Call`]: its statements with their
//! parameters, and the decoding of its rows. No I/O: the blocking and the async engine carry
//! the same calls.

use super::protocol::{bytes, int8, missing_row, opt_int8, unsigned, Isolation, Param, Row, Statement};
use super::schema;
use crate::clock::SharedClock;
use crate::error::{Error, Result};
use crate::store::{
    counter_overflow, counter_value_i64, current_version, Claim, CounterEntry, Inventory, LeaseEntry,
    LeaseGrant, MarkOutcome, RecordEntry, StreamEntry, Versioned,
};
use serde_json::Value;

/// How many times a transaction that PostgreSQL aborted for a serialization failure or a
/// deadlock is tried again (both roll back everything, so a retry cannot apply twice).
pub(super) const RETRIES: u32 = 5;

/// Whether PostgreSQL rolled a transaction back for a reason a retry can overcome: a
/// serialization failure or a deadlock (SQLSTATE 40001, 40P01).
pub(super) fn retryable(sqlstate: &str) -> bool {
    matches!(sqlstate, "40001" | "40P01")
}

/// Whether an error says the connection's server cannot take this store's writes any more: a
/// connection failure (class 08), a server shut down or starting (57P01, 57P02, 57P03), or a
/// read-only transaction (25006: a standby, or a demoted primary). Nothing was written; every
/// pooled connection is dropped, so the next call connects afresh and, with several hosts and
/// `target_session_attrs=read-write`, finds the primary.
#[cfg(feature = "postgres")]
pub(super) fn server_lost(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "25006")
}

/// Every this many writes of a store, up to this many expired leases and marks are removed
/// after the write commits, so expiry costs are spread over calls.
pub(super) const SWEEP_EVERY: u64 = 64;
pub(super) const AMORTIZED_SWEEP: i64 = 64;

/// Turns a call's rows (one list per statement) into its result.
type Decode<T> = Box<dyn FnOnce(Vec<Vec<Row>>) -> Result<T> + Send>;

/// One operation: statements run in one transaction, then their rows decoded.
pub(super) struct Call<T> {
    pub(super) isolation: Isolation,
    pub(super) statements: Vec<Statement>,
    /// Whether it writes (writes drive the amortized sweep of expired rows).
    pub(super) writes: bool,
    pub(super) decode: Decode<T>,
}

impl<T> Call<T> {
    /// A call refused before anything is sent.
    pub(super) fn refused(err: Error) -> Self {
        Self {
            isolation: Isolation::ReadCommitted,
            statements: Vec::new(),
            writes: false,
            decode: Box::new(|_| Err(err)),
        }
    }
}

/// One statement whose rows decode to the result.
fn single<T>(
    writes: bool,
    sql: &'static str,
    params: Vec<Param>,
    decode: impl FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
) -> Call<T> {
    Call {
        isolation: Isolation::ReadCommitted,
        statements: vec![Statement { sql, params }],
        writes,
        decode: Box::new(move |mut results| decode(results.pop().unwrap_or_default())),
    }
}

fn read<T>(
    sql: &'static str,
    params: Vec<Param>,
    decode: impl FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
) -> Call<T> {
    single(false, sql, params, decode)
}

fn write<T>(
    sql: &'static str,
    params: Vec<Param>,
    decode: impl FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
) -> Call<T> {
    single(true, sql, params, decode)
}

/// Plans the calls of one store: its namespace and the clock its statements are judged by.
pub(super) struct Planner {
    namespace: String,
    clock: SharedClock,
    /// Deadlines are judged by `clock` (passed to each statement) instead of the server's.
    pub(super) judge_by_clock: bool,
}

impl Planner {
    pub(super) fn new(namespace: &str, clock: SharedClock) -> Self {
        Self { namespace: namespace.to_owned(), judge_by_clock: !clock.is_wall_clock(), clock }
    }

    pub(super) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    fn ns(&self) -> Param {
        bytes(&self.namespace)
    }

    /// The `now` argument of the statements (NULL lets the server read its own clock), and the
    /// injected clock's reading, to turn "milliseconds left" into a deadline.
    fn now(&self) -> (Param, u64) {
        let now = self.clock.now_ms();
        (if self.judge_by_clock { int8(now) } else { Param::Int8(None) }, now)
    }

    pub(super) fn counter_next(&self, counter: &str) -> Call<u64> {
        let name = counter.to_owned();
        write(schema::NEXT, vec![self.ns(), bytes(counter)], move |rows| match rows.first() {
            Some(row) => unsigned("counter index", row.int(0)?),
            None => Err(counter_overflow(&name)),
        })
    }

    pub(super) fn counter_claim(&self, counter: &str, id: &str) -> Call<Claim> {
        let name = counter.to_owned();
        write(schema::CLAIM, vec![self.ns(), bytes(counter), bytes(id)], move |rows| {
            let row = rows.first().ok_or_else(|| missing_row("racefree_claim"))?;
            let (index, is_new) = (row.int(0)?, row.bool(1)?);
            if index == -1 {
                return Err(counter_overflow(&name));
            }
            Ok(Claim { index: unsigned("claimed index", index)?, is_new })
        })
    }

    pub(super) fn counter_index_of(&self, counter: &str, id: &str) -> Call<Option<u64>> {
        read(schema::INDEX_OF, vec![self.ns(), bytes(counter), bytes(id)], |rows| {
            rows.first().map(|row| unsigned("claimed index", row.int(0)?)).transpose()
        })
    }

    pub(super) fn counter_peek(&self, counter: &str) -> Call<u64> {
        read(schema::PEEK, vec![self.ns(), bytes(counter)], |rows| {
            rows.first().map_or(Ok(0), |row| unsigned("counter index", row.int(0)?))
        })
    }

    pub(super) fn counter_set(&self, counter: &str, next: u64) -> Call<()> {
        match counter_value_i64("PostgreSQL", next) {
            Ok(next) => {
                write(schema::SET, vec![self.ns(), bytes(counter), Param::Int8(Some(next))], |_| Ok(()))
            }
            Err(err) => Call::refused(err),
        }
    }

    pub(super) fn counter_reset(&self, counter: &str) -> Call<()> {
        write(schema::RESET, vec![self.ns(), bytes(counter)], |_| Ok(()))
    }

    /// Replay-safe by `request` (see [`schema::VERSION_2`]).
    pub(super) fn guard_mark(
        &self,
        guard: &str,
        stream: &str,
        position: u32,
        retention_ms: u64,
        request: &str,
    ) -> Call<MarkOutcome> {
        let Ok(position) = i32::try_from(position) else {
            return Call::refused(Error::invalid_argument(format!(
                "event position {position} is past PostgreSQL's integers"
            )));
        };
        let (now, _) = self.now();
        let params = vec![
            self.ns(),
            bytes(guard),
            bytes(stream),
            Param::Int4(position),
            int8(retention_ms),
            now,
            bytes(request),
        ];
        write(schema::MARK, params, |rows| {
            let row = rows.first().ok_or_else(|| missing_row("racefree_mark"))?;
            let (outcome, marked) = (row.int(0)?, row.int(1)?);
            let marked = unsigned("marked count", marked)?;
            Ok(match outcome {
                0 => MarkOutcome::First,
                1 => MarkOutcome::Duplicate,
                _ => MarkOutcome::OutOfOrder { marked },
            })
        })
    }

    pub(super) fn guard_marked(&self, guard: &str, stream: &str) -> Call<u32> {
        read(schema::MARKED, vec![self.ns(), bytes(guard), bytes(stream), self.now().0], |rows| {
            rows.first().map_or(Ok(0), |row| unsigned("marked count", row.int(0)?))
        })
    }

    pub(super) fn guard_forget(&self, guard: &str, stream: &str) -> Call<bool> {
        write(schema::FORGET, vec![self.ns(), bytes(guard), bytes(stream), self.now().0], |rows| {
            Ok(rows.first().map(|row| row.bool(0)).transpose()?.unwrap_or(false))
        })
    }

    /// Replay-safe by `request` (see [`schema::VERSION_2`]).
    pub(super) fn lease_try_grant(
        &self,
        lock: &str,
        key: &str,
        ttl_ms: u64,
        request: &str,
    ) -> Call<Option<LeaseGrant>> {
        // Read before the request: the deadline this handle reports is never later than the server's.
        let (now, local) = self.now();
        let name = lock.to_owned();
        let params = vec![self.ns(), bytes(lock), bytes(key), int8(ttl_ms), now, bytes(request)];
        write(schema::GRANT, params, move |rows| {
            let row = rows.first().ok_or_else(|| missing_row("racefree_grant"))?;
            let (token, left) = (row.opt_int(0)?, row.opt_int(1)?);
            match token {
                None => Ok(None),
                Some(token) if token < 0 => Err(Error::invalid_argument(format!(
                    "lock {name:?} has issued its largest fencing token"
                ))),
                Some(token) => Ok(Some(LeaseGrant {
                    token: unsigned("token", token)?,
                    deadline_ms: local.saturating_add(unsigned("ttl", left.unwrap_or(0))?),
                })),
            }
        })
    }

    pub(super) fn lease_renew(&self, lock: &str, key: &str, token: u64, ttl_ms: u64) -> Call<u64> {
        let (now, local) = self.now();
        let key_name = key.to_owned();
        let params = vec![self.ns(), bytes(lock), bytes(key), int8(token), now, int8(ttl_ms)];
        write(schema::RENEW, params, move |rows| {
            if rows.is_empty() {
                return Err(Error::NotOwner { key: key_name, token });
            }
            Ok(local.saturating_add(ttl_ms))
        })
    }

    pub(super) fn lease_release(&self, lock: &str, key: &str, token: u64) -> Call<()> {
        let key_name = key.to_owned();
        let params = vec![self.ns(), bytes(lock), bytes(key), int8(token), self.now().0];
        write(schema::RELEASE, params, move |rows| {
            if rows.is_empty() {
                return Err(Error::NotOwner { key: key_name, token });
            }
            Ok(())
        })
    }

    pub(super) fn lease_holder(&self, lock: &str, key: &str) -> Call<Option<LeaseGrant>> {
        let (now, local) = self.now();
        read(schema::HOLDER, vec![self.ns(), bytes(lock), bytes(key), now], move |rows| {
            rows.first()
                .map(|row| {
                    Ok(LeaseGrant {
                        token: unsigned("token", row.int(0)?)?,
                        deadline_ms: local.saturating_add(unsigned("lease time left", row.int(1)?)?),
                    })
                })
                .transpose()
        })
    }

    pub(super) fn record_get(&self, space: &str, key: &str) -> Call<Option<Versioned>> {
        let key_name = key.to_owned();
        read(schema::GET, vec![self.ns(), bytes(space), bytes(key)], move |rows| {
            rows.first()
                .map(|row| {
                    let value = serde_json::from_str(&row.text(0)?).map_err(|e| {
                        Error::corrupt(format!("postgres: record {key_name:?} holds invalid JSON: {e}"))
                    })?;
                    Ok(Versioned { value, version: unsigned("record version", row.int(1)?)? })
                })
                .transpose()
        })
    }

    pub(super) fn record_put(
        &self,
        space: &str,
        key: &str,
        value: &Value,
        expected_version: Option<u64>,
        fencing_token: Option<u64>,
    ) -> Call<u64> {
        if let Some(token) = fencing_token.filter(|&token| i64::try_from(token).is_err()) {
            return Call::refused(Error::invalid_argument(format!(
                "a PostgreSQL store holds fencing tokens up to {}, got {token}",
                i64::MAX
            )));
        }
        let params = vec![
            self.ns(),
            bytes(space),
            bytes(key),
            Param::Text(value.to_string()),
            opt_int8(expected_version),
            opt_int8(fencing_token),
        ];
        let key_name = key.to_owned();
        write(schema::PUT, params, move |rows| {
            let row = rows.first().ok_or_else(|| missing_row("racefree_put"))?;
            let (outcome, n) = (row.int(0)?, row.int(1)?);
            match outcome {
                0 => unsigned("record version", n),
                1 => Err(Error::Conflict { key: key_name, current_version: current_version("postgres", n)? }),
                _ => Err(Error::StaleToken {
                    key: key_name,
                    token: fencing_token.unwrap_or(0),
                    latest: unsigned("fence", n)?,
                }),
            }
        })
    }

    pub(super) fn record_delete(&self, space: &str, key: &str, expected_version: Option<u64>) -> Call<bool> {
        let key_name = key.to_owned();
        let params = vec![self.ns(), bytes(space), bytes(key), opt_int8(expected_version)];
        write(schema::DELETE, params, move |rows| {
            let row = rows.first().ok_or_else(|| missing_row("racefree_delete"))?;
            let (outcome, n) = (row.int(0)?, row.int(1)?);
            match outcome {
                0 => Ok(n == 1),
                _ => Err(Error::Conflict { key: key_name, current_version: current_version("postgres", n)? }),
            }
        })
    }

    /// Removes up to `limit` expired leases and marks.
    pub(super) fn sweep_up_to(&self, limit: i64) -> Call<u64> {
        read(schema::SWEEP, vec![self.ns(), self.now().0, Param::Int8(Some(limit))], |rows| {
            rows.first().map_or(Ok(0), |row| unsigned("swept count", row.int(0)?))
        })
    }

    pub(super) fn entries(&self) -> Call<u64> {
        read(schema::ENTRIES, vec![self.ns()], |rows| {
            rows.first().map_or(Ok(0), |row| unsigned("entry count", row.int(0)?))
        })
    }

    pub(super) fn inspect(&self) -> Call<Inventory> {
        let ((now, local_now), ns) = (self.now(), self.ns());
        let statement = |sql, params| Statement { sql, params };
        let statements = vec![
            statement(schema::INSPECT_NOW, vec![now.clone()]),
            statement(schema::INSPECT_COUNTERS, vec![ns.clone()]),
            statement(schema::INSPECT_LEASES, vec![ns.clone(), now.clone()]),
            statement(schema::INSPECT_STREAMS, vec![ns.clone(), now]),
            statement(schema::INSPECT_RECORDS, vec![ns]),
        ];
        Call {
            isolation: Isolation::Snapshot,
            statements,
            writes: false,
            decode: Box::new(move |results| inventory(results, local_now)),
        }
    }
}

fn inventory(results: Vec<Vec<Row>>, local_now: u64) -> Result<Inventory> {
    let [server_now, counters, leases, streams, records] =
        <[Vec<Row>; 5]>::try_from(results).map_err(|_| missing_row("inspect"))?;
    let server_now: u64 =
        unsigned("time", server_now.first().ok_or_else(|| missing_row("inspect"))?.int(0)?)?;
    // Deadlines on the store's clock, as `lease_holder` reports them: the time left by the
    // server's clock, from the injected clock's now.
    let local = |deadline: i64| -> Result<u64> {
        Ok(local_now.saturating_add(unsigned::<u64>("deadline", deadline)?.saturating_sub(server_now)))
    };
    let mut inventory = Inventory {
        counters: counters
            .iter()
            .map(|r| {
                Ok(CounterEntry {
                    counter: r.text(0)?,
                    next: unsigned("counter index", r.int(1)?)?,
                    claims: unsigned("claim count", r.int(2)?)?,
                })
            })
            .collect::<Result<_>>()?,
        leases: leases
            .iter()
            .map(|r| {
                Ok(LeaseEntry {
                    lock: r.text(0)?,
                    key: r.text(1)?,
                    token: unsigned("token", r.int(2)?)?,
                    deadline_ms: local(r.int(3)?)?,
                })
            })
            .collect::<Result<_>>()?,
        streams: streams
            .iter()
            .map(|r| {
                Ok(StreamEntry {
                    guard: r.text(0)?,
                    stream: r.text(1)?,
                    marked: unsigned("marked count", r.int(2)?)?,
                    expires_at_ms: local(r.int(3)?)?,
                })
            })
            .collect::<Result<_>>()?,
        records: records
            .iter()
            .map(|r| {
                Ok(RecordEntry {
                    space: r.text(0)?,
                    key: r.text(1)?,
                    version: unsigned("record version", r.int(2)?)?,
                })
            })
            .collect::<Result<_>>()?,
    };
    inventory.sort();
    Ok(inventory)
}
