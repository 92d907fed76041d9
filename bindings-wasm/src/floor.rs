//! Do-nothing calls with the argument shapes of the hot calls (`Counter.next` and `claim`,
//! `EventGuard.mark`, `StartLock.tryGrant` and `releaseToken`): the floor the benchmark
//! (`bench/bench.mjs`) measures each of them against, in the same run — what crossing into wasm
//! with those arguments costs before racefree does anything.

use js_sys::Float64Array;
use wasm_bindgen::prelude::*;

/// The floor calls; an instance stands in for a primitive's handle (`&self`, as theirs).
#[wasm_bindgen]
pub struct BenchFloor {
    calls: std::cell::Cell<f64>,
}

#[wasm_bindgen]
impl BenchFloor {
    /// A handle.
    #[wasm_bindgen(constructor)]
    pub fn new() -> BenchFloor {
        BenchFloor { calls: std::cell::Cell::new(0.0) }
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
