//! What a PostgreSQL call sends and what it gets back, apart from the engine that carries it:
//! statements with their owned parameters (so a call can run on another task, or in another
//! language's client), the isolation of their transaction, and the rows they answer, whose every
//! integer is range-checked when decoded (the SQL itself is in [`schema`](super::schema)).

use crate::error::{Error, Result};
use crate::store::decoded;

/// A statement's parameter, owned so that the call can run on the store's runtime or be handed
/// to a host's client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Param {
    /// `bytea`: namespaces, names, keys and request ids, as their UTF-8 bytes.
    Bytes(Vec<u8>),
    /// `bigint`, or NULL.
    Int8(Option<i64>),
    /// `integer`.
    Int4(i32),
    /// `text`: a record's JSON.
    Text(String),
}

pub(super) fn bytes(text: &str) -> Param {
    Param::Bytes(text.as_bytes().to_vec())
}

/// A duration or token as a statement's `bigint`. The values planned here are checked before
/// (durations by the primitives, tokens were issued as `bigint`); the largest stands for any
/// larger one, which only ever means "longer than the server can count".
pub(super) fn int8(value: u64) -> Param {
    Param::Int8(Some(i64::try_from(value).unwrap_or(i64::MAX)))
}

pub(super) fn opt_int8(value: Option<u64>) -> Param {
    Param::Int8(value.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
}

/// One statement with its parameters (`$1`, `$2`, … in `sql`). A statement without parameters
/// may hold several SQL commands (the schema's), to be sent as one simple query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The SQL text.
    pub sql: &'static str,
    /// Its parameters, in order.
    pub params: Vec<Param>,
}

/// The isolation of a call's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Isolation {
    /// Every operation: each statement sees what committed before it (after its row locks).
    ReadCommitted,
    /// `inspect`: one snapshot across its statements.
    Snapshot,
}

impl Isolation {
    /// The statement that begins a transaction of this isolation.
    pub fn begin(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
            Isolation::Snapshot => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }
}

/// One column's value in a row a statement answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `smallint`, `integer` or `bigint`.
    Int(i64),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `text` (and the other character types).
    Text(String),
}

/// The type OIDs [`Cell::from_text`] reads (PostgreSQL's `pg_type`).
const BOOL_OID: u32 = 16;
const BYTEA_OID: u32 = 17;
const NAME_OID: u32 = 19;
const INT8_OID: u32 = 20;
const INT2_OID: u32 = 21;
const INT4_OID: u32 = 23;
const TEXT_OID: u32 = 25;
const VARCHAR_OID: u32 = 1043;
const VOID_OID: u32 = 2278;

impl Cell {
    /// A column's value in PostgreSQL's text format (what a host's client returns when asked
    /// not to parse it), by the column's type OID: integers are read exactly, `bytea` from its
    /// hex form (`\x…`). `None` is NULL, and so is the value of a function returning `void`.
    ///
    /// # Errors
    /// `corrupt_data` for a type the statements never return, or text that is not of its type.
    pub fn from_text(type_oid: u32, text: Option<&str>) -> Result<Cell> {
        let Some(text) = text.filter(|_| type_oid != VOID_OID) else { return Ok(Cell::Null) };
        let unreadable = || Error::corrupt(format!("postgres: unreadable value {text:?} of type {type_oid}"));
        match type_oid {
            BOOL_OID => match text {
                "t" => Ok(Cell::Bool(true)),
                "f" => Ok(Cell::Bool(false)),
                _ => Err(unreadable()),
            },
            INT2_OID | INT4_OID | INT8_OID => text.parse().map(Cell::Int).map_err(|_| unreadable()),
            BYTEA_OID => {
                let hex = text.strip_prefix("\\x").ok_or_else(unreadable)?;
                if hex.len() % 2 != 0 {
                    return Err(unreadable());
                }
                (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .map(Cell::Bytes)
                    .ok_or_else(unreadable)
            }
            TEXT_OID | VARCHAR_OID | NAME_OID => Ok(Cell::Text(text.to_owned())),
            _ => Err(Error::corrupt(format!("postgres: a column of unexpected type {type_oid}"))),
        }
    }
}

/// One row a statement answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, column: usize) -> Result<&Cell> {
        self.0.get(column).ok_or_else(|| Error::corrupt(format!("postgres: a row without column {column}")))
    }

    fn wrong(&self, column: usize, wanted: &str) -> Error {
        Error::corrupt(format!("postgres: column {column} is {:?}, not {wanted}", self.0.get(column)))
    }

    /// An integer column.
    pub(super) fn int(&self, column: usize) -> Result<i64> {
        match self.cell(column)? {
            Cell::Int(value) => Ok(*value),
            _ => Err(self.wrong(column, "an integer")),
        }
    }

    /// An integer column that may be NULL.
    pub(super) fn opt_int(&self, column: usize) -> Result<Option<i64>> {
        match self.cell(column)? {
            Cell::Null => Ok(None),
            Cell::Int(value) => Ok(Some(*value)),
            _ => Err(self.wrong(column, "an integer or NULL")),
        }
    }

    /// A boolean column.
    pub(super) fn bool(&self, column: usize) -> Result<bool> {
        match self.cell(column)? {
            Cell::Bool(value) => Ok(*value),
            _ => Err(self.wrong(column, "a boolean")),
        }
    }

    /// A name (stored as `bytea`) or a text column, as text.
    pub(super) fn text(&self, column: usize) -> Result<String> {
        match self.cell(column)? {
            Cell::Bytes(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
            Cell::Text(text) => Ok(text.clone()),
            _ => Err(self.wrong(column, "text")),
        }
    }
}

/// A column's integer as the unsigned number it must be, or `corrupt_data`.
pub(super) fn unsigned<T: TryFrom<i64>>(what: &str, value: i64) -> Result<T> {
    decoded("postgres", what, value)
}

/// A function that must return one row returned none: the schema is not the one this build wrote.
pub(super) fn missing_row(what: &str) -> Error {
    Error::corrupt(format!("postgres: {what} returned no row; is racefree's schema intact?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_values_are_read_exactly() {
        assert_eq!(Cell::from_text(INT8_OID, Some("9223372036854775807")).unwrap(), Cell::Int(i64::MAX));
        assert_eq!(Cell::from_text(INT4_OID, Some("-1")).unwrap(), Cell::Int(-1));
        assert_eq!(Cell::from_text(BOOL_OID, Some("t")).unwrap(), Cell::Bool(true));
        assert_eq!(Cell::from_text(BYTEA_OID, Some("\\x6a6f6273")).unwrap(), Cell::Bytes(b"jobs".to_vec()));
        assert_eq!(Cell::from_text(TEXT_OID, Some("{\"a\":1}")).unwrap(), Cell::Text("{\"a\":1}".into()));
        assert_eq!(Cell::from_text(INT8_OID, None).unwrap(), Cell::Null);
    }

    #[test]
    fn text_format_values_of_the_wrong_form_are_refused() {
        for (oid, text) in [
            (INT8_OID, "9223372036854775808"),
            (INT8_OID, "1.5"),
            (BOOL_OID, "true"),
            (BYTEA_OID, "jobs"),
            (BYTEA_OID, "\\x6"),
            (BYTEA_OID, "\\xzz"),
            (1700, "1"),
        ] {
            let err = Cell::from_text(oid, Some(text)).unwrap_err();
            assert_eq!(err.code(), "corrupt_data", "{oid} {text:?}");
        }
    }

    #[test]
    fn a_cell_of_the_wrong_type_is_corrupt_data_not_a_panic() {
        let row = Row(vec![Cell::Text("x".into()), Cell::Null]);
        assert_eq!(row.int(0).unwrap_err().code(), "corrupt_data");
        assert_eq!(row.bool(1).unwrap_err().code(), "corrupt_data");
        assert_eq!(row.int(5).unwrap_err().code(), "corrupt_data");
        assert_eq!(row.opt_int(1).unwrap(), None);
    }
}
