//! The Redis transport of a hosted store: the core's Redis protocol carried by a `send` function
//! the JavaScript layer builds around an ioredis or node-redis client.

use std::cell::RefCell;
use std::sync::Arc;

use js_sys::{Array, Function, Reflect, Uint8Array};
use racefree::aio::{BoxFuture, Spawner};
use racefree::store::redis::protocol::{Command, Reply, Request};
use racefree::store::redis::Transport;
use racefree::{Error, Result};
use wasm_bindgen::prelude::*;

use crate::convert;
use crate::host_tasks::HostAnswer;
use crate::hosted::OneThread;

/// The host's `send(command, sha1, keys, args, node, then, slot, hashSlot)`: `command` is `"EVALSHA"` (with
/// the script's SHA-1) or the plain command's name; `then` is `undefined`, or for a write that
/// waits for replicas the plain requests (`[command, keys, args]`: a marker write, then `WAIT`)
/// to send right after it on a connection of its own (`WAIT` blocks the connection it is sent
/// on; on a cluster, to the primary of `hashSlot`, the hash slot of its keys), answered with the
/// array of every reply. It answers `slot` (see `host_tasks`) with the
/// reply (`null`, a number, a string, a `Uint8Array`, an array of replies, or
/// `{ error: "CODE message" }` for the server's error reply), or fails it with
/// `{ message, mayHaveRun }` when the request could not be carried. On a cluster, `node` is the
/// node (`"host:port"`) a walk's keyless request goes to (else `undefined`), and `nodes(slot)`
/// answers with the primaries a walk visits; a keyed request goes where the host's cluster client
/// routes it (by its first key; every key of a request shares a hash tag).
pub(crate) struct JsTransport {
    pub(crate) send: OneThread<Function>,
    pub(crate) nodes: Option<OneThread<Function>>,
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

/// A rejection of the host's `send`: `{ message, mayHaveRun }`. A request that may have run (a
/// timeout, a socket closed while it was in flight) is `timeout`, the outcome unknown; one that
/// was never written `backend_unavailable`, with the client's message. Either way a grant, a mark
/// or a record write is safe to send again: it carries its request id.
fn failure(value: &JsValue) -> Error {
    let field = |name: &str| Reflect::get(value, &JsValue::from_str(name)).ok();
    if field("mayHaveRun").is_some_and(|may| may.is_truthy()) {
        return Error::Timeout { waited: std::time::Duration::ZERO };
    }
    let message = field("message").and_then(|m| m.as_string()).unwrap_or_else(|| format!("{value:?}"));
    Error::BackendUnavailable { reason: format!("redis: {message}"), source: None }
}

/// What a host's call made by [`call_host`](crate::host_tasks::call_host) answers, or its
/// failure (thrown at once, or answered) sorted as [`failure`] sorts it.
async fn settled(call: std::result::Result<HostAnswer, JsValue>) -> Result<JsValue> {
    call.map_err(|thrown| failure(&thrown))?.await.map_err(|err| failure(&err))
}

thread_local! {
    /// The JavaScript strings of the commands' names and the scripts' SHA-1s, each made once:
    /// decoding them from UTF-8 again on every request is time the request does not need.
    static STATIC_TEXTS: RefCell<Vec<((usize, usize), JsValue)>> = const { RefCell::new(Vec::new()) };
}

/// `text` as a JavaScript string, made on its first use (a few dozen in all).
fn static_text(text: &'static str) -> JsValue {
    let key = (text.as_ptr() as usize, text.len());
    STATIC_TEXTS.with(|texts| {
        let mut texts = texts.borrow_mut();
        if let Some((_, made)) = texts.iter().find(|(made_for, _)| *made_for == key) {
            return made.clone();
        }
        let made = JsValue::from_str(text);
        texts.push((key, made.clone()));
        made
    })
}

impl JsTransport {
    fn carry<'a>(&'a self, node: Option<&str>, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        let (command, sha1) = match request.command {
            Command::Script(script) => ("EVALSHA", static_text(&script.sha1)),
            Command::Plain(name) => (name, JsValue::NULL),
        };
        let strings = |items: &[String]| items.iter().map(|s| JsValue::from_str(s)).collect::<Array>();
        let (keys, args) = (strings(&request.keys), strings(&request.args));
        // `undefined` for no node: the host's `send` takes it as an omitted argument.
        let node = node.map_or(JsValue::UNDEFINED, JsValue::from_str);
        let command = static_text(command);
        let then = request.wait.as_ref().map_or(JsValue::UNDEFINED, |wait| {
            // Plain commands (a marker write, `WAIT`): a name, keys and arguments each.
            let then = wait.requests().map(|then| {
                Array::of3(&static_text(then.command.name()), &strings(&then.keys), &strings(&then.args))
            });
            then.iter().collect::<Array>().into()
        });
        // On a cluster, where a write that waits for replicas goes: the connection of its own is
        // opened to the primary of its keys' hash slot.
        let hash_slot = match (&request.wait, &self.nodes, request.keys.first()) {
            (Some(_), Some(_), Some(key)) => {
                JsValue::from(racefree::store::redis::cluster::slot(key.as_bytes()))
            }
            _ => JsValue::UNDEFINED,
        };
        let answered = settled(crate::host_tasks::call_host(|slot| {
            self.send.0.call8(&JsValue::NULL, &command, &sha1, &keys, &args, &node, &then, slot, &hash_slot)
        }));
        Box::pin(OneThread(async move { reply(&answered.await?) }))
    }
}

impl Transport for JsTransport {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        self.carry(None, request)
    }

    fn spawner(&self) -> Spawner {
        Arc::new(crate::host_tasks::spawn)
    }

    /// A promise cannot be cancelled: `host_tasks` runs every operation to its end.
    fn runs_to_completion(&self) -> bool {
        true
    }

    fn walked_nodes(&self) -> BoxFuture<'_, Result<Vec<Option<String>>>> {
        let Some(nodes) = &self.nodes else { return Box::pin(async { Ok(vec![None]) }) };
        let answered = settled(crate::host_tasks::call_host(|slot| nodes.0.call1(&JsValue::NULL, slot)));
        Box::pin(OneThread(async move {
            let listed = answered.await?;
            let names: Option<Option<Vec<String>>> =
                listed.dyn_ref::<Array>().map(|names| names.iter().map(|name| name.as_string()).collect());
            match names {
                Some(Some(names)) => Ok(names.into_iter().map(Some).collect()),
                _ => Err(Error::CorruptData {
                    reason: "redis: the cluster client listed its primaries as something else than names"
                        .to_owned(),
                }),
            }
        }))
    }

    fn send_to<'a>(&'a self, node: Option<&'a str>, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        self.carry(node, request)
    }
}
