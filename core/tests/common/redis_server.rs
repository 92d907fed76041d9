//! A real redis-server (Debian's package) on a free 127.0.0.1 port, stopped by its PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::watchdog::stop_when_this_process_exits;

pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with persistence off (plus `extra` configuration arguments).
    pub fn start(extra: &[&str]) -> Self {
        let dir = super::scratch_path("redis");
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut server =
            Self { port: 0, dir, extra: extra.iter().map(|s| (*s).to_owned()).collect(), child: None };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start; install it with scripts/setup.sh (Debian's redis-server)");
    }

    /// A server shared by every test of this binary (stopped by its watchdog).
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| Self::start(&[]))
    }

    /// A URL with a namespace no other call of this process gets: a fresh, empty store.
    pub fn fresh_url(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        format!(
            "redis://127.0.0.1:{}/0?namespace=t{}-{}",
            self.port,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) -> bool {
        let mut args: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--daemonize".into(),
            "no".into(),
        ];
        if !self.extra.iter().any(|a| a == "--appendonly") {
            args.extend(["--appendonly".into(), "no".into()]);
        }
        args.extend(self.extra.iter().cloned());
        let Ok(child) = Command::new("redis-server")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            return false;
        };
        // Every server started is stopped when this process exits, even if it is never dropped.
        stop_when_this_process_exits(child.id(), "TERM");
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self.ping() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false; // exited: most likely the port was taken meanwhile
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
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

    fn try_command(&self, parts: &[&str], timeout: Duration) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(timeout))?;
        let mut request = format!("*{}\r\n", parts.len());
        for part in parts {
            request.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        stream.write_all(request.as_bytes())?;
        let mut reader = BufReader::new(stream);
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
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }

    /// Kills the server by its PID with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server cleanly and starts it again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Starts a stopped or killed server again on the same port and data directory.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        assert!(self.spawn(), "redis-server did not restart on port {}", self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// How many times the server ran `command`, from the text of `INFO commandstats`.
pub fn calls(commandstats: &str, command: &str) -> u64 {
    commandstats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .map_or(0, |rest| rest.split(',').next().unwrap_or("0").parse().unwrap_or(0))
}
