//! A real redis-server (Debian's package) on a free 127.0.0.1 port, stopped by its PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::test_server::{fresh_namespace, on_a_free_port, ServerProcess};

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    process: Option<ServerProcess>,
}

impl RedisServer {
    /// Starts a server with persistence off (plus `extra` configuration arguments).
    pub fn start(extra: &[&str]) -> Self {
        let dir = super::scratch_path("redis");
        std::fs::create_dir_all(&dir).expect("redis dir");
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        on_a_free_port(|port| {
            let mut server = Self { port, dir: dir.clone(), extra: extra.clone(), process: None };
            server.spawn().then_some(server)
        })
        .expect("redis-server did not start; install it with scripts/setup.sh (Debian's redis-server)")
    }

    /// A server shared by every test of this binary (stopped by its watchdog).
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| Self::start(&[]))
    }

    /// A URL with a namespace no other call of this process gets: a fresh, empty store.
    pub fn fresh_url(&self) -> String {
        format!("redis://127.0.0.1:{}/0?namespace={}", self.port, fresh_namespace("t"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--daemonize",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir);
        if !self.extra.iter().any(|a| a == "--appendonly") {
            command.args(["--appendonly", "no"]);
        }
        command.args(&self.extra).stdout(Stdio::null()).stderr(Stdio::null());
        self.process = ServerProcess::spawn(&mut command, "TERM", Duration::from_secs(10), || self.ping());
        self.process.is_some()
    }

    /// Whether the server answers PING (and has finished loading its data).
    pub fn ping(&self) -> bool {
        self.try_command(&["PING"], Duration::from_secs(1)).is_ok_and(|reply| reply.starts_with("+PONG"))
    }

    /// Sends one command on a connection of its own and returns its reply, read to its end: a
    /// simple string or error line as sent, a bulk string's contents (for server-side facts the
    /// store does not expose).
    pub fn command(&self, parts: &[&str]) -> String {
        self.try_command(parts, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{parts:?} on 127.0.0.1:{}: {e}", self.port))
    }

    /// [`command`](Self::command) on the server at 127.0.0.1:`port` (a sentinel).
    pub fn command_on(port: u16, parts: &[&str]) -> String {
        let probe = RedisServer { port, dir: PathBuf::new(), extra: Vec::new(), process: None };
        probe.command(parts)
    }

    /// [`command_on`](Self::command_on) for a reply that is an array of bulk strings (a nil
    /// array or element is empty).
    pub fn array_on(port: u16, parts: &[&str]) -> Vec<String> {
        let read = || -> std::io::Result<Vec<String>> {
            let mut reader = BufReader::new(Self::send_on(port, parts, Duration::from_secs(5))?);
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let count: usize = line.strip_prefix('*').and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            let mut items = Vec::with_capacity(count);
            for _ in 0..count {
                line.clear();
                reader.read_line(&mut line)?;
                let Some(length) = line.strip_prefix('$').and_then(|n| n.trim().parse::<usize>().ok()) else {
                    items.push(String::new());
                    continue;
                };
                let mut body = vec![0; length + 2];
                reader.read_exact(&mut body)?;
                body.truncate(length);
                items.push(String::from_utf8_lossy(&body).into_owned());
            }
            Ok(items)
        };
        read().unwrap_or_else(|e| panic!("{parts:?} on 127.0.0.1:{port}: {e}"))
    }

    fn send_on(port: u16, parts: &[&str], timeout: Duration) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(timeout))?;
        let mut request = format!("*{}\r\n", parts.len());
        for part in parts {
            request.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        stream.write_all(request.as_bytes())?;
        Ok(stream)
    }

    fn try_command(&self, parts: &[&str], timeout: Duration) -> std::io::Result<String> {
        let mut reader = BufReader::new(Self::send_on(self.port, parts, timeout)?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let Some(length) = line.strip_prefix('$').and_then(|n| n.trim().parse::<usize>().ok()) else {
            return Ok(line);
        };
        let mut body = vec![0; length + 2];
        reader.read_exact(&mut body)?;
        body.truncate(length);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// Stops the server by its PID: SIGTERM (a clean shutdown, as a restart does).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Kills the server by its PID with SIGKILL (a crash).
    pub fn kill(&mut self) {
        self.process = None; // dropped: killed
    }

    /// Stops the server cleanly and starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped or killed server again on the same port and data directory.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "the server is still running");
        assert!(self.spawn(), "redis-server did not restart on port {}", self.port);
    }
}

/// How many times the server ran `command`, from the text of `INFO commandstats`.
pub fn calls(commandstats: &str, command: &str) -> u64 {
    commandstats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap_or("0").parse().unwrap_or(0))
}

/// A Redis Sentinel (`redis-server <config> --sentinel`) watching the primary `master` at
/// 127.0.0.1:`primary_port`, quick to fail over (down after 300 ms), stopped by its PID.
pub struct RedisSentinel {
    pub port: u16,
    _process: ServerProcess,
}

impl RedisSentinel {
    pub fn start(master: &str, primary_port: u16, quorum: u32) -> Self {
        let dir = super::scratch_path("redis-sentinel");
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        on_a_free_port(|port| {
            // A sentinel rewrites its configuration file: one of its own.
            let config = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {master} 127.0.0.1 {primary_port} {quorum}\n\
                     sentinel down-after-milliseconds {master} 300\n\
                     sentinel failover-timeout {master} 3000\n\
                     sentinel parallel-syncs {master} 1\n",
                    dir = dir.display()
                ),
            )
            .expect("sentinel config");
            let mut command = Command::new("redis-server");
            command.arg(&config).arg("--sentinel").stdout(Stdio::null()).stderr(Stdio::null());
            let ping = || {
                let probe = RedisServer { port, dir: dir.clone(), extra: Vec::new(), process: None };
                probe.ping()
            };
            let process = ServerProcess::spawn(&mut command, "TERM", Duration::from_secs(10), ping)?;
            Some(Self { port, _process: process })
        })
        .expect("redis-server --sentinel did not start")
    }
}

/// One Sentinel group at a time in a test binary: a killed server's port is free again, and a
/// server another test starts there meanwhile would be taken for the old primary (a fresh, empty
/// one, answering as a primary).
pub static ONE_GROUP_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A Sentinel group: a primary, a replica (or more) and three sentinels (quorum 2) watching it
/// as [`SentinelGroup::MASTER`].
pub struct SentinelGroup {
    _turn: std::sync::MutexGuard<'static, ()>,
    pub primary: RedisServer,
    pub replica: RedisServer,
    /// Replicas past the first ([`SentinelGroup::with_replicas`]).
    pub more_replicas: Vec<RedisServer>,
    pub sentinels: Vec<RedisSentinel>,
}

impl SentinelGroup {
    pub const MASTER: &'static str = "orders";

    /// Starts the group, both servers with `config` (`redis-server` arguments), and waits until
    /// the replica is in sync.
    pub fn start(config: &[&str]) -> Self {
        Self::with_replicas(config, 1)
    }

    /// [`start`](Self::start) with `replicas` replicas (at least 1).
    pub fn with_replicas(config: &[&str], replicas: usize) -> Self {
        let turn = ONE_GROUP_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let primary = RedisServer::start(config);
        let primary_port = primary.port.to_string();
        let replica_config: Vec<&str> =
            config.iter().copied().chain(["--replicaof", "127.0.0.1", &primary_port]).collect();
        let mut all: Vec<RedisServer> =
            (0..replicas.max(1)).map(|_| RedisServer::start(&replica_config)).collect();
        let replica = all.remove(0);
        let sentinels = (0..3).map(|_| RedisSentinel::start(Self::MASTER, primary.port, 2)).collect();
        let group = Self { _turn: turn, primary, replica, more_replicas: all, sentinels };
        group.wait_until(|| {
            group.replicas().all(|r| r.command(&["INFO", "replication"]).contains("master_link_status:up"))
        });
        group
    }

    /// Every replica.
    pub fn replicas(&self) -> impl Iterator<Item = &RedisServer> {
        std::iter::once(&self.replica).chain(&self.more_replicas)
    }

    /// A `redis+sentinel://` URL of the group with `options`.
    pub fn url(&self, options: &str) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{}/0?timeout_ms=1000&{options}", hosts.join(","), Self::MASTER)
    }

    pub fn wait_until(&self, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "the Sentinel group did not get there in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the replica has every write the primary acknowledged so far (`WAIT` would
    /// wait only for the writes of its own connection).
    pub fn replicated(&self) {
        let offset = |server: &RedisServer| -> u64 {
            let info = server.command(&["INFO", "replication"]);
            info.lines()
                .find_map(|line| line.strip_prefix("master_repl_offset:"))
                .and_then(|n| n.trim().parse().ok())
                .expect("master_repl_offset")
        };
        let written = offset(&self.primary);
        self.wait_until(|| offset(&self.replica) >= written);
    }
}

/// A Redis Cluster on 127.0.0.1: `primaries` primaries (the slots split evenly by
/// `redis-cli --cluster create`), each with `replicas_each` replicas, quick to fail over
/// (`cluster-node-timeout 1000`). Every node is a [`RedisServer`], stopped by its PID.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(primaries: usize, replicas_each: usize) -> Self {
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas_each))
            .map(|_| {
                // The bus on a free port of its own: the default, port + 10000, is past 65535
                // for a port above 55535.
                let bus = super::test_server::free_port().to_string();
                RedisServer::start(&[
                    "--cluster-port",
                    &bus,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-require-full-coverage",
                    "no",
                    // A replica syncs at once (the default waits 5 s for more replicas), and may
                    // take over however long ago it last heard from its primary.
                    "--repl-diskless-sync-delay",
                    "0",
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas_each.to_string(), "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("redis-cli --cluster create (Debian's redis-tools)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_until(|| {
            cluster.nodes.iter().all(|n| {
                let replication = n.command(&["INFO", "replication"]);
                n.command(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && (replication.contains("role:master") || replication.contains("master_link_status:up"))
            }) && cluster.primaries().len() == primaries
        });
        cluster
    }

    /// A cluster of 3 primaries with one replica each, shared by every test of this binary.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| Self::start(3, 1))
    }

    /// A `redis+cluster://` URL naming every node, with `options`.
    pub fn url(&self, options: &str) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        format!("redis+cluster://{}?{options}", hosts.join(","))
    }

    /// A URL with a namespace no other call of this process gets.
    pub fn fresh_url(&self) -> String {
        self.url(&format!("namespace={}", fresh_namespace("t")))
    }

    /// The node at `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes.iter().find(|n| n.port == port).expect("a node of the cluster")
    }

    /// The node at `port`, to stop or kill.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes.iter_mut().find(|n| n.port == port).expect("a node of the cluster")
    }

    /// The ports of the primaries that serve slots, as a live node sees them.
    pub fn primaries(&self) -> Vec<u16> {
        let live = self.nodes.iter().find(|n| n.ping()).expect("a live node");
        let mut ports: Vec<u16> = live
            .command(&["CLUSTER", "NODES"])
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail") && line.split(' ').count() > 8)
            .filter_map(|line| line.split(' ').nth(1)?.split('@').next()?.rsplit(':').next()?.parse().ok())
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of the primary serving `slot`, as the node at `asked` sees it.
    pub fn owner_of(&self, slot: u16, asked: u16) -> u16 {
        let nodes = self.node(asked).command(&["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") {
                continue;
            }
            for range in &fields[8..] {
                let (first, last) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(first), Ok(last)) = (first.parse::<u16>(), last.parse::<u16>()) {
                    if (first..=last).contains(&slot) {
                        return fields[1]
                            .split('@')
                            .next()
                            .unwrap()
                            .rsplit(':')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                    }
                }
            }
        }
        panic!("no primary serves slot {slot}:\n{nodes}")
    }

    /// The node id of the node at `port`.
    pub fn id_of(&self, port: u16) -> String {
        self.node(port).command(&["CLUSTER", "MYID"])
    }

    /// Moves `slot` from the primary at `from` to the one at `to`, one key at a time with a pause
    /// between (so that clients meet the slot half-moved: `ASK`, and `TRYAGAIN` for a script whose
    /// keys are split), then assigns it to `to` everywhere.
    pub fn migrate(&self, slot: u16, from: u16, to: u16) {
        let slot_text = slot.to_string();
        let (from_id, to_id) = (self.id_of(from), self.id_of(to));
        assert!(self
            .node(to)
            .command(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id])
            .starts_with("+OK"));
        assert!(self
            .node(from)
            .command(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id])
            .starts_with("+OK"));
        loop {
            let keys = RedisServer::array_on(from, &["CLUSTER", "GETKEYSINSLOT", &slot_text, "1"]);
            let Some(key) = keys.first() else { break };
            let moved = self.node(from).command(&["MIGRATE", "127.0.0.1", &to.to_string(), key, "0", "5000"]);
            assert!(moved.starts_with("+OK") || moved.starts_with("+NOKEY"), "MIGRATE {key}: {moved}");
            std::thread::sleep(Duration::from_millis(60));
        }
        for node in [to, from] {
            assert!(self
                .node(node)
                .command(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id])
                .starts_with("+OK"));
        }
        for primary in self.primaries() {
            if primary != to && primary != from {
                self.node(primary).command(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &to_id]);
            }
        }
    }

    /// Moves every slot that holds a key matching `pattern` (a namespace's keys: `Layout::scan_pattern`)
    /// to the next primary; returns how many slots moved.
    pub fn migrate_matching(&self, pattern: &str) -> usize {
        let primaries = self.primaries();
        let mut slots = std::collections::BTreeSet::new();
        for &primary in &primaries {
            let keys = RedisServer::array_on(primary, &["KEYS", pattern]);
            for key in keys {
                let slot = self.node(primary).command(&["CLUSTER", "KEYSLOT", &key]);
                slots.insert(slot.trim_start_matches(':').trim().parse::<u16>().expect("a slot"));
            }
        }
        for &slot in &slots {
            let from = self.owner_of(slot, primaries[0]);
            let at = primaries.iter().position(|&p| p == from).expect("a primary");
            self.migrate(slot, from, primaries[(at + 1) % primaries.len()]);
        }
        slots.len()
    }

    pub fn wait_until(&self, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "the cluster did not get there in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A primary, a replica and three sentinels shared by every test of a binary that stops none of
/// them (the conformance suite, linearizability): the store reaches the primary through the
/// sentinels, as in production. Unlike [`SentinelGroup`], it takes no turn.
pub struct SharedSentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisSentinel>,
}

impl SharedSentinelGroup {
    pub fn get() -> &'static SharedSentinelGroup {
        static SHARED: OnceLock<SharedSentinelGroup> = OnceLock::new();
        SHARED.get_or_init(|| {
            let primary = RedisServer::start(&[]);
            let replica = RedisServer::start(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
            let sentinels =
                (0..3).map(|_| RedisSentinel::start(SentinelGroup::MASTER, primary.port, 2)).collect();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while !replica.command(&["INFO", "replication"]).contains("master_link_status:up") {
                assert!(std::time::Instant::now() < deadline, "the replica did not connect in 30 s");
                std::thread::sleep(Duration::from_millis(50));
            }
            SharedSentinelGroup { primary, replica, sentinels }
        })
    }

    /// A `redis+sentinel://` URL with a namespace no other call of this process gets.
    pub fn fresh_url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!(
            "redis+sentinel://{}/{}/0?namespace={}",
            hosts.join(","),
            SentinelGroup::MASTER,
            fresh_namespace("t")
        )
    }
}
