//! Do-nothing calls with the argument shapes of the hot calls (`Counter.next` and `claim`,
//! `EventGuard.mark`, `StartLock.tryGrant` and `releaseToken`, `Records.update`): the floor the
//! benchmark (`bench/bench.mjs`) measures each of them against, in the same run — what crossing
//! into wasm with those arguments costs before racefree does anything.

use std::collections::HashMap;

use js_sys::Float64Array;
use wasm_bindgen::prelude::*;

/// The floor calls; an instance stands in for a primitive's handle (`&self`, as theirs). The
/// `*Looked` forms also do the least any store must do on top of the crossing: look the key up
/// in one map (and count there), and read the clock once where the operation judges or sets a
/// deadline (`mark`, a grant, a release). racefree's store does more: a shard, a table keyed by
/// name and key, expiry and capacity bookkeeping, fencing tokens.
#[wasm_bindgen]
pub struct BenchFloor {
    calls: std::cell::Cell<f64>,
    map: std::cell::RefCell<HashMap<String, f64, foldhash::fast::RandomState>>,
    /// `update`'s value: the text its change adapter returned last (null before the first).
    text: std::cell::RefCell<JsValue>,
}

#[wasm_bindgen]
impl BenchFloor {
    /// A handle.
    #[wasm_bindgen(constructor)]
    pub fn new() -> BenchFloor {
        BenchFloor {
            calls: std::cell::Cell::new(0.0),
            map: std::cell::RefCell::default(),
            text: std::cell::RefCell::new(JsValue::NULL),
        }
    }

    /// As `Counter.next`: no argument, a number back.
    pub fn none(&self) -> f64 {
        self.count(0)
    }

    /// As `Counter.claim`: one string.
    pub fn one(&self, a: &str) -> f64 {
        self.count(a.len())
    }

    /// As `EventGuard.mark`: two strings.
    pub fn two(&self, a: &str, b: &str) -> f64 {
        self.count(a.len() + b.len())
    }

    /// As `StartLock.tryGrant`: a string, a number and the reply array written to.
    pub fn grant(&self, key: &str, ttl_ms: f64, reply: &Float64Array) -> f64 {
        reply.set_index(0, ttl_ms);
        self.count(key.len())
    }

    /// As `StartLock.releaseToken`: a string and a number.
    pub fn release(&self, key: &str, token: f64) -> f64 {
        self.count(key.len()) + token
    }

    /// As `Records.update`: a key and the JS layer's change adapter, called once with the text
    /// held (a JavaScript string already, as a handle's text cache keeps it), its result read
    /// into the module's memory and kept as the next text: the crossing, the callback and the
    /// value's JSON round trip through it, and nothing of a store (no versions, no parse of the
    /// text into a value, no new string for the next call).
    pub fn update(&self, key: &str, change: &js_sys::Function) -> f64 {
        let current = self.text.borrow().clone();
        let Ok(next) = change.call1(&JsValue::NULL, &current) else { return f64::NAN };
        let Some(text) = next.as_string() else { return f64::NAN };
        *self.text.borrow_mut() = next;
        self.count(key.len() + text.len())
    }

    /// As `none`, counting in a map under a fixed key (a counter handle's).
    #[wasm_bindgen(js_name = noneLooked)]
    pub fn none_looked(&self) -> f64 {
        self.look("task:1")
    }

    /// As `one`, counting in a map under `a`.
    #[wasm_bindgen(js_name = oneLooked)]
    pub fn one_looked(&self, a: &str) -> f64 {
        self.look(a)
    }

    /// As `two`, counting in a map under `a` (`b` is only carried), reading the clock.
    #[wasm_bindgen(js_name = twoLooked)]
    pub fn two_looked(&self, a: &str, b: &str) -> f64 {
        self.look(a) + b.len() as f64 + f64::from(js_sys::Date::now() > 0.0)
    }

    /// As `grant`, counting in a map under `key`, the deadline read off the clock.
    #[wasm_bindgen(js_name = grantLooked)]
    pub fn grant_looked(&self, key: &str, ttl_ms: f64, reply: &Float64Array) -> f64 {
        reply.set_index(0, js_sys::Date::now() + ttl_ms);
        self.look(key)
    }

    /// As `release`, counting in a map under `key`, reading the clock.
    #[wasm_bindgen(js_name = releaseLooked)]
    pub fn release_looked(&self, key: &str, token: f64) -> f64 {
        self.look(key) + token + f64::from(js_sys::Date::now() > 0.0)
    }

    fn look(&self, key: &str) -> f64 {
        let mut map = self.map.borrow_mut();
        match map.get_mut(key) {
            Some(count) => {
                *count += 1.0;
                *count
            }
            None => {
                map.insert(key.to_owned(), 1.0);
                1.0
            }
        }
    }

    /// Counts the call (so that it is not optimised away) and returns a number, as the hot calls do.
    fn count(&self, len: usize) -> f64 {
        self.calls.set(self.calls.get() + 1.0);
        len as f64
    }
}

impl Default for BenchFloor {
    fn default() -> Self {
        Self::new()
    }
}
