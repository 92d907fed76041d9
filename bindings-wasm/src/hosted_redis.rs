//! The Redis transport of a hosted store: the core's Redis protocol carried by a `send` function
//! the JavaScript layer builds around an ioredis or node-redis client.

use std::sync::Arc;

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use racefree::aio::{BoxFuture, Spawner};
use racefree::store::redis::protocol::{Command, Reply, Request};
use racefree::store::redis::Transport;
use racefree::{Error, Result};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::convert;
use crate::hosted::OneThread;

/// The host's `send(command, sha1, keys, args)`: `command` is `"EVALSHA"` (with the script's
/// SHA-1) or the plain command's name. It resolves to the reply (`null`, a number, a string, a
/// `Uint8Array`, an array of replies, or `{ error: "CODE message" }` for the server's error
/// reply) and rejects with `{ message, timedOut }` when the request could not be carried.
pub(crate) struct JsTransport {
    pub(crate) send: OneThread<Function>,
}

/// A reply from the host, as the protocol reads it. Integers past 2^53 − 1 cannot come as
/// numbers exactly: they are refused, never rounded (the layer passes them as `bigint` or text).
fn reply(value: &JsValue) -> Result<Reply> {
    if value.is_null() || value.is_undefined() {
        return Ok(Reply::Nil);
    }
    if let Some(n) = value.as_f64() {
        if n.fract() != 0.0 || n.abs() > convert::MAX_SAFE_INTEGER as f64 {
            return Err(Error::CorruptData {
                reason: format!("redis: the client rounded an integer reply ({n})"),
            });
        }
        return Ok(Reply::Int(n as i64));
    }
    if value.is_bigint() {
        let text = js_sys::BigInt::from(value.clone()).to_string(10).map(String::from).unwrap_or_default();
        return text.parse().map(Reply::Int).map_err(|_| Error::CorruptData {
            reason: format!("redis: integer reply {text} is out of range"),
        });
    }
    if let Some(text) = value.as_string() {
        return Ok(Reply::Data(text.into_bytes()));
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(Reply::Data(bytes.to_vec()));
    }
    if let Some(items) = value.dyn_ref::<Array>() {
        return items.iter().map(|item| reply(&item)).collect::<Result<_>>().map(Reply::Array);
    }
    let error = Reflect::get(value, &JsValue::from_str("error")).ok().and_then(|e| e.as_string());
    match error {
        Some(text) => {
            let (code, message) = text.split_once(' ').unwrap_or((&text, ""));
            Ok(Reply::Error { code: code.to_owned(), message: message.to_owned() })
        }
        None => {
            Err(Error::CorruptData { reason: "redis: the client answered with an unknown value".to_owned() })
        }
    }
}

/// A rejection of the host's `send`: `{ message, timedOut }`. A timeout is `timeout` (the request
/// may have run); any other failure `backend_unavailable`, with the client's message. Either way a
/// grant or a mark is safe to send again: it carries its request id.
fn failure(value: &JsValue) -> Error {
    let field = |name: &str| Reflect::get(value, &JsValue::from_str(name)).ok();
    if field("timedOut").is_some_and(|timed_out| timed_out.is_truthy()) {
        return Error::Timeout { waited: std::time::Duration::ZERO };
    }
    let message = field("message").and_then(|m| m.as_string()).unwrap_or_else(|| format!("{value:?}"));
    Error::BackendUnavailable { reason: format!("redis: {message}"), source: None }
}

impl Transport for JsTransport {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        let (command, sha1) = match request.command {
            Command::Script(script) => ("EVALSHA", JsValue::from_str(&script.sha1)),
            Command::Plain(name) => (name, JsValue::NULL),
        };
        let keys: Array = request.keys.iter().map(|k| JsValue::from_str(k)).collect();
        let args: Array = request.args.iter().map(|a| JsValue::from_str(a)).collect();
        let call = self.send.0.call4(&JsValue::NULL, &JsValue::from_str(command), &sha1, &keys, &args);
        Box::pin(OneThread(async move {
            let promise = call.map_err(|err| failure(&err))?;
            let answered = JsFuture::from(Promise::resolve(&promise)).await.map_err(|err| failure(&err))?;
            reply(&answered)
        }))
    }

    fn spawner(&self) -> Spawner {
        Arc::new(wasm_bindgen_futures::spawn_local)
    }
}
