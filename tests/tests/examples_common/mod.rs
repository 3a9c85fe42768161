//! Running the workspace's examples as child processes: shared by
//! `examples_client.rs` and `examples_source.rs`.
#![allow(dead_code, reason = "each test file uses part of it")]

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::client_common::within;

/// How long an example may take to start, or to finish once fed.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(30);

/// The built example `name` (of any crate of the workspace), next to this
/// test's binary: `target/<profile>/deps/<test>` → `target/<profile>/examples/<name>`.
/// `cargo build --examples` leaves it there; `cargo test --all-targets` does
/// not (it builds examples as test harnesses, under hashed names), so
/// `scripts/test.sh` builds the examples first.
pub(crate) fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in target/<profile>/deps")
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "example binary {} not found: build the examples first, with \
         `cargo build --workspace --examples` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// An example running as a child process.
pub(crate) struct Running {
    name: &'static str,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    stderr: JoinHandle<String>,
}

impl Running {
    pub(crate) fn spawn(name: &'static str, args: &[&str]) -> Self {
        let mut child = Command::new(example(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("example {name} starts: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Self {
            name,
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
            stderr,
        }
    }

    /// Reads stdout until a line satisfies `pred`; returns it.
    pub(crate) async fn expect_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        loop {
            match within(RUN_LIMIT, what, self.lines.next_line()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                other => {
                    let (status, stderr) = self.exit().await;
                    panic!(
                        "example {} ended ({other:?}, {status}) while waiting for {what}\n\
                         stdout:\n{}\nstderr:\n{stderr}",
                        self.name,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Reads stdout to its end, then waits for the exit (all within
    /// [`RUN_LIMIT`]); returns the status, every stdout line and stderr.
    pub(crate) async fn wait(mut self) -> (ExitStatus, Vec<String>, String) {
        loop {
            match within(RUN_LIMIT, "the example's output", self.lines.next_line()).await {
                Ok(Some(line)) => self.seen.push(line),
                Ok(None) => break,
                Err(e) => panic!("reading the example's stdout: {e}"),
            }
        }
        let (status, stderr) = self.exit().await;
        (status, self.seen, stderr)
    }

    /// As [`Running::wait`], asserting the exit is a success; returns every
    /// stdout line.
    pub(crate) async fn finish(self) -> Vec<String> {
        let name = self.name;
        let (status, lines, stderr) = self.wait().await;
        assert!(
            status.success(),
            "example {name} failed: {status}\nstdout:\n{}\nstderr:\n{stderr}",
            lines.join("\n")
        );
        lines
    }

    pub(crate) async fn exit(&mut self) -> (ExitStatus, String) {
        let status = within(RUN_LIMIT, "the example exits", self.child.wait())
            .await
            .expect("wait for the example");
        let stderr = within(RUN_LIMIT, "the example's stderr", &mut self.stderr)
            .await
            .unwrap_or_default();
        (status, stderr)
    }
}
