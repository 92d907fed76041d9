//! The PostgreSQL transport of a hosted store: the core's planned transactions carried by a `run`
//! function the JavaScript layer builds around a `pg` pool.

use std::sync::Arc;

use js_sys::{Array, Function, Reflect, Uint8Array};
use racefree::aio::{BoxFuture, Spawner};
use racefree::store::postgres::protocol::{Cell, Param, Row};
use racefree::store::postgres::{Transaction, TransactionError, Transport};
use racefree::Error;
use wasm_bindgen::prelude::*;

use crate::hosted::OneThread;

/// The host's `run(begin, statements, slot)`: `begin` is the statement that opens the transaction, or
/// `null` when the one statement is sent alone; `statements` is an array of `[sql, params]`, each
/// parameter a `Uint8Array` (`bytea`), a decimal string or `null` (`bigint`), a number
/// (`integer`) or a string (`text`). It answers `slot` (see `host_tasks`) with one
/// `[typeOids, rows]` per statement, each row an array of the columns' text (`null` for NULL),
/// or with `{ sqlstate, message }` when the server refused a statement (the transaction rolled
/// back); it fails it with `{ message, mayHaveRun }` when the transaction could not be carried
/// (`mayHaveRun`: it may have committed).
pub(crate) struct JsTransport {
    pub(crate) run: OneThread<Function>,
}

fn param(param: &Param) -> JsValue {
    match param {
        Param::Bytes(bytes) => Uint8Array::from(bytes.as_slice()).into(),
        Param::Int8(Some(value)) => JsValue::from_str(&value.to_string()),
        Param::Int8(None) => JsValue::NULL,
        Param::Int4(value) => JsValue::from_f64(f64::from(*value)),
        Param::Text(text) => JsValue::from_str(text),
        // A parameter kind this binding does not know yet: refused by the host as a bad value.
        _ => JsValue::UNDEFINED,
    }
}

fn field(value: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(value, &JsValue::from_str(name)).ok().filter(|v| !v.is_undefined())
}

/// One statement's `[typeOids, rows]`, every value read exactly by its type.
fn rows(result: &JsValue) -> racefree::Result<Vec<Row>> {
    let malformed =
        || Error::CorruptData { reason: "postgres: the client answered with an unknown value".into() };
    let pair = result.dyn_ref::<Array>().ok_or_else(malformed)?;
    let types: Vec<u32> = pair
        .get(0)
        .dyn_into::<Array>()
        .map_err(|_| malformed())?
        .iter()
        .map(|oid| oid.as_f64().map(|oid| oid as u32).ok_or_else(malformed))
        .collect::<racefree::Result<_>>()?;
    let rows = pair.get(1).dyn_into::<Array>().map_err(|_| malformed())?;
    rows.iter()
        .map(|row| {
            let row = row.dyn_into::<Array>().map_err(|_| malformed())?;
            if row.length() as usize != types.len() {
                return Err(malformed());
            }
            let cells = types.iter().zip(row.iter()).map(|(&oid, value)| {
                if value.is_null() {
                    Cell::from_text(oid, None)
                } else {
                    Cell::from_text(oid, Some(&value.as_string().ok_or_else(malformed)?))
                }
            });
            cells.collect::<racefree::Result<Vec<_>>>().map(Row)
        })
        .collect()
}

/// A rejection of the host's `run`: `timeout` when the transaction may have committed, else
/// `backend_unavailable` with the client's message.
fn failure(value: &JsValue) -> TransactionError {
    if field(value, "mayHaveRun").is_some_and(|may| may.is_truthy()) {
        return TransactionError::Failed(Error::Timeout { waited: std::time::Duration::ZERO });
    }
    let message = field(value, "message").and_then(|m| m.as_string()).unwrap_or_else(|| format!("{value:?}"));
    TransactionError::Failed(Error::BackendUnavailable {
        reason: format!("postgres: {message}"),
        source: None,
    })
}

impl Transport for JsTransport {
    fn run<'a>(
        &'a self,
        transaction: Transaction<'a>,
    ) -> BoxFuture<'a, Result<Vec<Vec<Row>>, TransactionError>> {
        let begin = transaction.begin().map_or(JsValue::NULL, JsValue::from_str);
        let statements: Array = transaction
            .statements
            .iter()
            .map(|statement| {
                let params: Array = statement.params.iter().map(param).collect();
                JsValue::from(Array::of2(&JsValue::from_str(statement.sql), &params))
            })
            .collect();
        let answer =
            crate::host_tasks::call_host(|slot| self.run.0.call3(&JsValue::NULL, &begin, &statements, slot));
        Box::pin(OneThread(async move {
            let answered = answer.map_err(|thrown| failure(&thrown))?.await.map_err(|err| failure(&err))?;
            if let Some(sqlstate) = field(&answered, "sqlstate").and_then(|code| code.as_string()) {
                let message = field(&answered, "message").and_then(|m| m.as_string()).unwrap_or_default();
                return Err(TransactionError::Server { sqlstate, message });
            }
            let results = answered.dyn_into::<Array>().map_err(|_| {
                TransactionError::Failed(Error::CorruptData {
                    reason: "postgres: the client answered with an unknown value".into(),
                })
            })?;
            results
                .iter()
                .map(|result| rows(&result))
                .collect::<racefree::Result<_>>()
                .map_err(TransactionError::Failed)
        }))
    }

    fn spawner(&self) -> Spawner {
        Arc::new(crate::host_tasks::spawn)
    }

    /// A promise cannot be cancelled: `host_tasks` runs every operation to its end.
    fn runs_to_completion(&self) -> bool {
        true
    }
}
