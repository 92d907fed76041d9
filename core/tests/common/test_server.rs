//! What every test server shares (Redis, PostgreSQL, PgBouncer): a free port, the spawn that
//! waits until the server is ready, the stop by PID, and the watchdog that stops it once the test
//! process has exited, whether or not its `Drop` ran (statics are never dropped; a killed or
//! aborted run drops nothing).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port that was free a moment ago (a server started on it may still find it taken: see
/// [`on_a_free_port`]).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `start(port)` on fresh free ports until it returns `Some`, five tries at most (another process
/// may take the port between the check and the server's bind).
pub fn on_a_free_port<T>(mut start: impl FnMut(u16) -> Option<T>) -> Option<T> {
    (0..5).find_map(|_| start(free_port()))
}

/// A server process a test started: stopped by its PID with `stop_signal` (and killed when
/// dropped), and by the watchdog after this process exits.
pub struct ServerProcess {
    child: Option<Child>,
    stop_signal: &'static str,
}

impl ServerProcess {
    /// Spawns `command` and waits up to `ready_within` for `ready()`. `None` when it could not
    /// start, exited (most likely its port was taken meanwhile) or never became ready.
    pub fn spawn(
        command: &mut Command,
        stop_signal: &'static str,
        ready_within: Duration,
        ready: impl Fn() -> bool,
    ) -> Option<Self> {
        let child = command.stdin(Stdio::null()).spawn().ok()?;
        stop_when_this_process_exits(child.id(), stop_signal);
        let mut server = Self { child: Some(child), stop_signal };
        let started = Instant::now();
        while started.elapsed() < ready_within {
            if ready() {
                return Some(server);
            }
            if !server.is_running() {
                server.child = None;
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None // dropped: killed
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Sends the server's stop signal by its PID and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args([&format!("-{}", self.stop_signal), &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Kills the server by its PID with SIGKILL (a crash) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// When `pid` started (clock ticks after boot, field 22 of `/proc/<pid>/stat`). With the PID it
/// names one process: a PID that a stopped server freed and another process got is left alone.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2, the command name, is in parentheses and may hold spaces: count after its end.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19).map(str::to_owned)
}

/// Starts a watchdog that sends `signal` to `pid` after this process exits, if `pid` is still the
/// process it was when this was called.
pub fn stop_when_this_process_exits(pid: u32, signal: &str) {
    let Some(started) = start_time(pid) else {
        return; // gone already
    };
    let script = format!(
        "while kill -0 {me} 2>/dev/null; do sleep 0.3; done
         stat=$(cat /proc/{pid}/stat 2>/dev/null) || exit 0
         rest=${{stat##*\") \"}}
         set -- $rest
         [ \"${{20}}\" = {started} ] && kill -{signal} {pid}",
        me = std::process::id()
    );
    // Outlives this process by design: it is what stops the server after the last test.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
}

/// A namespace no other call of this process gets (`<prefix><pid>-<n>`): a fresh, empty store.
pub fn fresh_namespace(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
