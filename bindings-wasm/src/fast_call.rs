//! The fast-call protocol, the one place it is defined (its JavaScript half is `js/fast_call.js`).
//!
//! The calls an application makes in its hot loop — `Counter.next` and `claim`, `EventGuard.mark`,
//! `StartLock.tryGrant`, `renewToken` and `releaseToken` — return one plain `f64` instead of a
//! `Result` or an object: the glue wasm-bindgen generates for a `Result` builds an array on every
//! call, and a wasm object costs an allocation and a finalizer registration; a number crosses the
//! boundary as it is. Measured on Node 20, `tryGrant` + `releaseToken`: 490–530 ns with a number,
//! 780–1,320 ns with a `Vec<f64>` reply, 555–565 ns with the deadline written into the caller's
//! `Float64Array` (the form used here: the reply goes where the caller says, not to shared state).
//!
//! - **Errors**: NaN, with the error kept for [`take_error`], which the caller calls at once. No
//!   value of these calls is ever NaN.
//! - **Claims**: `index` for a claim this call made, `-(index + 1)` for one made before.
//! - **Marks**: 1 for the one caller that records the event, 0 for a duplicate.
//! - **Grants**: the lease's token, or 0 when the key is held; the deadline goes to `reply[0]`.

use std::cell::RefCell;

use js_sys::Float64Array;
use racefree::{Claim, LeaseGrant, Mark};
use wasm_bindgen::prelude::*;

use crate::convert::to_number;

thread_local! {
    static PENDING: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// The result of a fast call as one number: the value, or NaN with the error kept for
/// [`take_error`].
pub fn number_or_nan(result: Result<f64, JsValue>) -> f64 {
    result.unwrap_or_else(|err| {
        PENDING.with(|pending| *pending.borrow_mut() = Some(err));
        f64::NAN
    })
}

/// The error behind the last NaN a fast call returned.
#[wasm_bindgen(js_name = takeError)]
pub fn take_error() -> JsValue {
    PENDING.with(|pending| pending.borrow_mut().take()).unwrap_or(JsValue::UNDEFINED)
}

/// A claim as one number.
pub fn claim_number(claim: Claim) -> Result<f64, JsValue> {
    let index = to_number("index", claim.index)?;
    Ok(if claim.is_new { index } else { -(index + 1.0) })
}

/// A mark as one number.
pub fn mark_number(mark: Mark) -> f64 {
    f64::from(u8::from(mark == Mark::First))
}

/// A grant as its token (0: none), its deadline written to `reply[0]`.
pub fn grant_number(grant: Option<LeaseGrant>, reply: &Float64Array) -> Result<f64, JsValue> {
    let Some(grant) = grant else { return Ok(0.0) };
    reply.set_index(0, grant.deadline_ms as f64);
    to_number("token", grant.token)
}
