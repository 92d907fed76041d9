//! Stops a test server by its PID once the test process has exited, whether or not its `Drop`
//! ran (statics are never dropped; a killed or aborted run drops nothing).

use std::process::{Command, Stdio};

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
