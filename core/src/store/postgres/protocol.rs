//! What a PostgreSQL call sends and what it gets back, apart from the engine that carries it:
//! statements with their owned parameters (so a call can run on another task), the isolation of
//! their transaction, and the decoding of rows, where every integer is range-checked (the SQL
//! itself is in [`schema`](super::schema)).

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use crate::error::{Error, Result};
use crate::store::decoded;

/// A statement's parameter, owned so that the call can run on the store's runtime.
#[derive(Debug, Clone)]
pub(super) enum Param {
    Bytes(Vec<u8>),
    Int8(Option<i64>),
    Int4(i32),
    Text(String),
}

impl Param {
    pub(super) fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Param::Bytes(v) => (v, Type::BYTEA),
            Param::Int8(v) => (v, Type::INT8),
            Param::Int4(v) => (v, Type::INT4),
            Param::Text(v) => (v, Type::TEXT),
        }
    }
}

pub(super) fn bytes(text: &str) -> Param {
    Param::Bytes(text.as_bytes().to_vec())
}

pub(super) fn int8(value: u64) -> Param {
    Param::Int8(Some(i64::try_from(value).unwrap_or(i64::MAX)))
}

pub(super) fn opt_int8(value: Option<u64>) -> Param {
    Param::Int8(value.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// One statement with its parameters.
#[derive(Debug, Clone)]
pub(super) struct Statement {
    pub(super) sql: &'static str,
    pub(super) params: Vec<Param>,
}

/// The isolation of a call's transaction.
#[derive(Debug, Clone, Copy)]
pub(super) enum Isolation {
    /// Every operation: each statement sees what committed before it (after its row locks).
    ReadCommitted,
    /// `inspect`: one snapshot across its statements.
    Snapshot,
}

impl Isolation {
    pub(super) fn begin(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// A column's integer as the unsigned number it must be, or `corrupt_data`.
pub(super) fn unsigned<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T> {
    decoded("postgres", what, value)
}

pub(super) fn text(row: &Row, column: usize) -> String {
    String::from_utf8_lossy(row.get::<_, &[u8]>(column)).into_owned()
}

/// A function that must return one row returned none: the schema is not the one this build wrote.
pub(super) fn missing_row(what: &str) -> Error {
    Error::corrupt(format!("postgres: {what} returned no row; is racefree's schema intact?"))
}
