//! racefree errors → real JavaScript `Error` objects with `name` and `code`, mapped on the code.
//!
//! The JavaScript layer installs a factory that builds instances of its error classes
//! (`RacefreeError` and one subclass per code); without it, a plain `Error` with `name`, `code`
//! and the details set is thrown. Never a string.

use std::cell::RefCell;

use js_sys::{Error as JsError, Function, Object, Reflect};
use racefree::Error;
use wasm_bindgen::prelude::*;

thread_local! {
    static FACTORY: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Installs `factory(code, message, details) -> Error`, used for every error thrown from here on.
#[wasm_bindgen(js_name = installErrorFactory)]
pub fn install_error_factory(factory: Function) {
    FACTORY.with(|f| *f.borrow_mut() = Some(factory));
}

fn set(target: &Object, name: &str, value: impl Into<JsValue>) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(target, &JsValue::from_str(name), &value.into());
}

fn number(value: u64) -> JsValue {
    JsValue::from_f64(value as f64)
}

/// The JavaScript error for a core error.
pub fn to_js(err: Error) -> JsValue {
    let details = Object::new();
    match &err {
        Error::Conflict { key, current_version } => {
            set(&details, "key", key.as_str());
            set(&details, "currentVersion", current_version.map_or(JsValue::NULL, number));
        }
        Error::NotOwner { key, token } => {
            set(&details, "key", key.as_str());
            set(&details, "token", number(*token));
        }
        Error::OutOfOrder { stream, event, missing } => {
            set(&details, "stream", stream.as_str());
            set(&details, "event", event.as_str());
            set(&details, "missing", missing.as_str());
        }
        Error::StaleToken { key, token, latest } => {
            set(&details, "key", key.as_str());
            set(&details, "token", number(*token));
            set(&details, "latest", number(*latest));
        }
        Error::CapacityExceeded { max_keys } => set(&details, "maxKeys", number(*max_keys as u64)),
        Error::Timeout { waited } => set(&details, "waitedMs", waited.as_secs_f64() * 1000.0),
        Error::LeaseLost { key, token, reason } => {
            set(&details, "key", key.as_str());
            set(&details, "token", number(*token));
            set(&details, "reason", reason.code());
            set(&details, "lastError", reason.last_error().cloned().map_or(JsValue::NULL, to_js));
        }
        Error::BackendUnavailable { source: Some(cause), .. } => {
            set(&details, "cause", cause_chain(cause.get()))
        }
        _ => {}
    }
    build(err.code(), &err.to_string(), details)
}

/// The backend client's error and its own causes, as `Error`s linked by `cause`.
fn cause_chain(error: &(dyn std::error::Error + 'static)) -> JsValue {
    let made = JsError::new(&error.to_string());
    if let Some(inner) = error.source() {
        set(&made, "cause", cause_chain(inner));
    }
    made.into()
}

fn build(code: &str, message: &str, details: Object) -> JsValue {
    let made = FACTORY.with(|f| {
        f.borrow()
            .as_ref()
            .and_then(|factory| factory.call3(&JsValue::NULL, &code.into(), &message.into(), &details).ok())
    });
    made.unwrap_or_else(|| {
        let error = JsError::new(message);
        error.set_name("RacefreeError");
        set(&error, "code", code);
        let _ = Object::assign(&error, &details);
        error.into()
    })
}

/// A `TypeError` naming what was expected and what came instead.
pub fn wrong_type(what: &str, expected: &str, got: &JsValue) -> JsValue {
    let kind = got.js_typeof().as_string().unwrap_or_default();
    let kind = if got.is_null() { "null".to_owned() } else { kind };
    js_sys::TypeError::new(&format!("{what} must be {expected}, got {kind}")).into()
}

/// A core error as a `Result` error.
pub trait IntoJs<T> {
    /// Maps the error to its JavaScript error.
    fn js(self) -> Result<T, JsValue>;
}

impl<T> IntoJs<T> for Result<T, Error> {
    fn js(self) -> Result<T, JsValue> {
        self.map_err(to_js)
    }
}
