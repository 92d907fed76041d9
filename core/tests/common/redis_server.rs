//! A real redis-server (Debian's package) on a free 127.0.0.1 port, stopped by its PID.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

    /// A server shared by every test of this binary; a watchdog stops it by PID when the test
    /// process exits (statics are never dropped).
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let server = Self::start(&[]);
            let pid = server.pid().expect("running");
            // Outlives this process by design: it is what stops the server after the last test.
            #[allow(clippy::zombie_processes)]
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "while kill -0 {} 2>/dev/null; do sleep 0.3; done; kill {pid}",
                    std::process::id()
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("watchdog");
            server
        })
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
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read(&mut reply).is_ok_and(|n| reply[..n].starts_with(b"+PONG"))
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
