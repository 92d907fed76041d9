//! A real PostgreSQL server (Debian's package) on a free 127.0.0.1 port, its Unix socket in a
//! private directory, started by the tests with `initdb` and `postgres` (as the `postgres` user
//! when the tests run as root: PostgreSQL refuses to run as root) and stopped by its PID.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::test_server::{fresh_namespace, on_a_free_port, ServerProcess};

pub struct PostgresServer {
    pub port: u16,
    /// The data directory's parent, which also holds the Unix socket and the log.
    pub dir: PathBuf,
    extra: Vec<String>,
    process: Option<ServerProcess>,
}

/// The newest of Debian's PostgreSQL installations (`/usr/lib/postgresql/<major>/bin`).
pub fn bin(program: &str) -> PathBuf {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("PostgreSQL is not installed: run scripts/setup.sh (Debian's postgresql)");
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin/{program}"))
}

/// The uid and gid to run the server as: `postgres` when this process is root.
fn server_user() -> Option<(u32, u32)> {
    let me = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid_line = me.lines().find(|l| l.starts_with("Uid:"))?;
    if uid_line.split_whitespace().nth(1)? != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    let fields: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres"))
        .expect("no postgres user: install Debian's postgresql (scripts/setup.sh)");
    Some((fields[2].parse().expect("uid"), fields[3].parse().expect("gid")))
}

fn as_server_user(command: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = server_user() {
        command.uid(uid).gid(gid);
    }
    command
}

pub fn give_to_server_user(path: &Path) {
    if let Some((uid, gid)) = server_user() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
}

impl PostgresServer {
    /// Initializes a fresh cluster and starts it (plus `extra` `-c name=value` settings).
    pub fn start(extra: &[&str]) -> Self {
        let dir = super::scratch_path("postgres");
        std::fs::create_dir_all(&dir).expect("postgres dir");
        give_to_server_user(&dir);
        let status = as_server_user(Command::new(bin("initdb")).args([
            "-D",
            &dir.join("data").display().to_string(),
            "-U",
            "racefree",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]))
        .current_dir(&dir)
        .output()
        .expect("initdb");
        // Its words, for a failure that happens only on a loaded machine.
        assert!(
            status.status.success(),
            "initdb failed in {}: {}{}",
            dir.display(),
            String::from_utf8_lossy(&status.stdout),
            String::from_utf8_lossy(&status.stderr)
        );
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        on_a_free_port(|port| {
            let mut server = Self { port, dir: dir.clone(), extra: extra.clone(), process: None };
            server.spawn().then_some(server)
        })
        .unwrap_or_else(|| panic!("postgres did not start; see {}", dir.join("log").display()))
    }

    /// A streaming-replication standby of `primary` (a base backup of it, following its WAL),
    /// started on a free port: read-only until [`promote`](Self::promote)d.
    pub fn standby_of(primary: &PostgresServer) -> Self {
        let dir = super::scratch_path("postgres-standby");
        std::fs::create_dir_all(&dir).expect("standby dir");
        give_to_server_user(&dir);
        let backup =
            as_server_user(Command::new(bin("pg_basebackup")).arg("-D").arg(dir.join("data")).arg("-h"))
                .arg(&primary.dir)
                .args([
                    "-p",
                    &primary.port.to_string(),
                    "-U",
                    "racefree",
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ])
                .output()
                .expect("pg_basebackup");
        assert!(backup.status.success(), "pg_basebackup: {}", String::from_utf8_lossy(&backup.stderr));
        on_a_free_port(|port| {
            let mut server = Self { port, dir: dir.clone(), extra: Vec::new(), process: None };
            server.spawn().then_some(server)
        })
        .unwrap_or_else(|| panic!("the standby did not start; see {}", dir.join("log").display()))
    }

    /// Waits until this standby has replayed everything `primary` has written so far.
    pub fn catch_up_with(&self, primary: &PostgresServer) {
        let written = primary.psql("postgres", "SELECT pg_current_wal_lsn()");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let caught_up = format!("SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn");
        while self.psql("postgres", &caught_up) != "t" {
            assert!(std::time::Instant::now() < deadline, "the standby did not replay up to {written}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Promotes this standby to a primary and waits until it takes writes.
    pub fn promote(&self) {
        assert_eq!(self.psql("postgres", "SELECT pg_promote(true, 30)"), "t", "the standby was not promoted");
    }

    /// Sends `signal` (`-STOP`, `-KILL`) to the server's backends, found by their parent's PID
    /// (the postmaster's), then to the postmaster: a whole server frozen, or crashed.
    pub fn signal_all(&self, signal: &str) {
        let pid = self.pid().expect("running").to_string();
        // pkill's status is 1 when there is no child: nothing to signal.
        Command::new("pkill").args([signal, "-P", &pid]).status().expect("pkill");
        assert!(Command::new("kill").args([signal, &pid]).status().expect("kill").success());
    }

    /// A server shared by every test of this binary (stopped by its watchdog).
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(|| Self::start(&[]))
    }

    /// A primary and its streaming standby shared by every test of this binary, reached by a
    /// URL naming both with `target_session_attrs=read-write` ([`fresh_pair_url`]).
    pub fn shared_with_standby() -> &'static (PostgresServer, PostgresServer) {
        static SHARED: OnceLock<(PostgresServer, PostgresServer)> = OnceLock::new();
        SHARED.get_or_init(|| {
            let primary = Self::start(&[]);
            let standby = Self::standby_of(&primary);
            (primary, standby)
        })
    }

    /// A URL naming the standby first and the primary second (the store must skip the standby),
    /// with a namespace no other call of this process gets.
    pub fn fresh_pair_url() -> String {
        let (primary, standby) = Self::shared_with_standby();
        format!(
            "postgres://racefree@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&namespace={}",
            standby.port,
            primary.port,
            fresh_namespace("t")
        )
    }

    /// The server's URL (database `postgres`, user `racefree`) with racefree options appended.
    pub fn url(&self, options: &str) -> String {
        let sep = if options.is_empty() { "" } else { "?" };
        format!("postgres://racefree@127.0.0.1:{}/postgres{sep}{options}", self.port)
    }

    /// A URL with a namespace no other call of this process gets: a fresh, empty store.
    pub fn fresh_url(&self) -> String {
        self.url(&format!("namespace={}", fresh_namespace("t")))
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(ServerProcess::pid)
    }

    /// Runs `sql` with psql over the private socket; returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "racefree", "-d", database, "-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new(bin("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=400"]);
        for setting in &self.extra {
            command.args(["-c", setting]);
        }
        let log = std::fs::File::create(self.dir.join("log")).expect("log");
        give_to_server_user(&self.dir.join("log"));
        as_server_user(&mut command).stdout(Stdio::null()).stderr(log);
        // SIGINT: PostgreSQL's fast shutdown (sessions are ended).
        self.process = ServerProcess::spawn(&mut command, "INT", Duration::from_secs(30), || self.ready());
        self.process.is_some()
    }

    /// Whether the server accepts connections.
    pub fn ready(&self) -> bool {
        Command::new(bin("pg_isready"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "racefree", "-d", "postgres", "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops the server by its PID: SIGINT, PostgreSQL's fast shutdown (sessions are ended).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Kills the server by its PID with SIGKILL (a crash).
    pub fn kill(&mut self) {
        self.process = None; // dropped: killed
    }

    /// Starts a stopped server again on the same port and data directory.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "the server is still running");
        assert!(self.spawn(), "postgres did not restart on port {}", self.port);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Debian's PgBouncer in front of a [`PostgresServer`], in transaction pooling mode (each
/// transaction may run on another server connection), killed by its PID when dropped.
pub struct PgBouncer {
    pub port: u16,
    _process: ServerProcess,
}

impl PgBouncer {
    pub fn start(server: &PostgresServer) -> Self {
        let dir = super::scratch_path("pgbouncer");
        std::fs::create_dir_all(&dir).expect("pgbouncer dir");
        give_to_server_user(&dir);
        std::fs::write(dir.join("users.txt"), "\"racefree\" \"\"\n").expect("users");
        on_a_free_port(|port| {
            let ini = format!(
                "[databases]\npostgres = host=127.0.0.1 port={} dbname=postgres user=racefree\n\
                 [pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = transaction\nmax_client_conn = 1000\n\
                 default_pool_size = 20\nlogfile = {}\n",
                server.port,
                dir.join("users.txt").display(),
                dir.join("log").display(),
            );
            std::fs::write(dir.join("pgbouncer.ini"), ini).expect("ini");
            let mut command = Command::new("pgbouncer");
            as_server_user(command.arg(dir.join("pgbouncer.ini")))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let ready = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            let process = ServerProcess::spawn(&mut command, "TERM", Duration::from_secs(10), ready)?;
            Some(Self { port, _process: process })
        })
        .unwrap_or_else(|| {
            panic!(
                "pgbouncer did not start (scripts/setup.sh installs it); see {}",
                dir.join("log").display()
            )
        })
    }

    /// A bouncer in front of the shared server, for every test of this binary (stopped by its
    /// watchdog).
    pub fn shared() -> &'static PgBouncer {
        static SHARED: OnceLock<PgBouncer> = OnceLock::new();
        SHARED.get_or_init(|| Self::start(PostgresServer::shared()))
    }

    /// A fresh namespace through the bouncer.
    pub fn fresh_url(&self) -> String {
        format!("postgres://racefree@127.0.0.1:{}/postgres?namespace={}", self.port, fresh_namespace("b"))
    }
}
