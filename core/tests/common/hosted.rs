//! A host's own Redis client carrying the core's protocol (`racefree::store::redis::Transport`),
//! as a Node service's ioredis will: here redis-rs's multiplexed connection plays the host's
//! client, so the conformance suite proves the hosted store on a real server.

use std::sync::Arc;

use racefree::aio::{self, BoxFuture, Spawner};
use racefree::store::redis::protocol::{Command, Reply, Request};
use racefree::store::redis::{HostedRedisStore, Transport};
use racefree::{Error, Result, SharedClock, SharedStore};

use super::on_async::{runtime, wait, OnAsync};

/// The host's client: one multiplexed redis-rs connection, no racefree code in between. With
/// `resend`, every script is sent twice and the second reply returned: a client that resends a
/// request whose reply it lost (ioredis after a reconnect, a cluster client after a failover).
struct HostClient {
    connection: redis::aio::MultiplexedConnection,
    resend: bool,
}

fn reply(value: redis::Value) -> Reply {
    use redis::Value as V;
    match value {
        V::Nil => Reply::Nil,
        V::Int(n) => Reply::Int(n),
        V::BulkString(bytes) => Reply::Data(bytes),
        V::SimpleString(text) => Reply::Status(text),
        V::Okay => Reply::Status("OK".to_owned()),
        V::Array(items) => Reply::Array(items.into_iter().map(reply).collect()),
        V::ServerError(error) => Reply::Error {
            code: error.code().to_owned(),
            message: error.details().unwrap_or_default().to_owned(),
        },
        other => Reply::Data(format!("{other:?}").into_bytes()),
    }
}

impl Transport for HostClient {
    fn send<'a>(&'a self, request: &'a Request) -> BoxFuture<'a, Result<Reply>> {
        Box::pin(async move {
            let mut cmd = match request.command {
                Command::Script(script) => {
                    let mut cmd = redis::cmd("EVALSHA");
                    cmd.arg(&script.sha1).arg(request.keys.len());
                    cmd
                }
                Command::Plain(name) => redis::cmd(name),
            };
            cmd.arg(&request.keys).arg(&request.args);
            let mut connection = self.connection.clone();
            if self.resend && matches!(request.command, Command::Script(_)) {
                // The first reply is lost; an error means the request did not run: send anyway.
                let _ = cmd.query_async::<redis::Value>(&mut connection).await;
            }
            match cmd.query_async::<redis::Value>(&mut connection).await {
                Ok(value) => Ok(reply(value)),
                Err(err) => match err.code() {
                    Some(code) => Ok(Reply::Error {
                        code: code.to_owned(),
                        message: err.detail().unwrap_or_default().to_owned(),
                    }),
                    None => Err(Error::BackendUnavailable { reason: err.to_string(), source: None }),
                },
            }
        })
    }

    fn spawner(&self) -> Spawner {
        let runtime = runtime().handle().clone();
        Arc::new(move |task| drop(runtime.spawn(task)))
    }
}

/// The hosted store on the server at `url`, seen as a blocking store.
pub fn open(url: &str, clock: SharedClock) -> SharedStore {
    open_with(url, clock, false)
}

/// [`open`], over a client that sends every script twice (see [`HostClient`]).
pub fn open_resending(url: &str, clock: SharedClock) -> SharedStore {
    open_with(url, clock, true)
}

fn open_with(url: &str, clock: SharedClock, resend: bool) -> SharedStore {
    let (url, namespace) = match url.split_once("?namespace=") {
        Some((url, namespace)) => (url.to_owned(), namespace.to_owned()),
        None => (url.to_owned(), String::new()),
    };
    let store = wait(async move {
        let client = redis::Client::open(url.as_str()).expect("url");
        let connection = client.get_multiplexed_async_connection().await.expect("connect");
        HostedRedisStore::new(HostClient { connection, resend }, &namespace, clock)
            .map(|store| -> aio::SharedStore { Arc::new(store) })
    })
    .expect("hosted store");
    Arc::new(OnAsync(store))
}
