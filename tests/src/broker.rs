//! A real mosquitto broker for integration tests and benchmarks.
//!
//! [`Mosquitto::start`](crate::broker::Mosquitto::start) runs `/usr/sbin/mosquitto`
//! (2.0.x) on `127.0.0.1` with a config of its own, in a temporary directory of its
//! own, on an ephemeral port, and returns once the broker accepts TCP connections.
//! Dropping the value kills the broker and removes the directory.
//!
//! Every config holds these lines, then the builder's options, then the lines added
//! with [`config_line`](crate::broker::MosquittoBuilder::config_line), in that order:
//!
//! ```text
//! user root
//! per_listener_settings false
//! allow_anonymous true
//! listener PORT 127.0.0.1
//! max_queued_messages 0
//! max_inflight_messages 0
//! log_dest file DIR/mosquitto.log
//! log_type all
//! connection_messages true
//! ```
//!
//! A broker that cannot start is a test failure: the functions here panic, with the
//! broker's log in the message, rather than return errors.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//!
//! let broker = mqtt_tests::broker::Mosquitto::start();
//! let mut stream = TcpStream::connect(broker.addr()).unwrap();
//! // MQTT 3.1.1 CONNECT, empty client id, clean session, keep alive 60 s.
//! let connect = [
//!     0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
//! ];
//! stream.write_all(&connect).unwrap();
//! let mut connack = [0; 4];
//! stream.read_exact(&mut connack).unwrap();
//! assert_eq!(connack, [0x20, 0x02, 0x00, 0x00]);
//! ```

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::unwrap_used,
    reason = "test harness: a broker that cannot start is a test failure"
)]

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The broker executable.
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// First starts tried, each on a fresh ephemeral port, before giving up.
const START_ATTEMPTS: u32 = 5;
/// How long one start may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(20);
/// How long [`Mosquitto::restart`] keeps retrying to bind its port (TIME_WAIT).
const RESTART_RETRY: Duration = Duration::from_secs(5);
/// How long [`Mosquitto::stop`] waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a SIGKILLed process to exit.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// If the log does not say "running" (a config line changed the logging), a
/// listener that accepted connections for this long with the broker alive counts
/// as ready.
const READY_WITHOUT_LOG: Duration = Duration::from_secs(1);

const LOG_FILE: &str = "mosquitto.log";
const OUTPUT_FILE: &str = "output.log";
const CONFIG_FILE: &str = "mosquitto.conf";

/// A mosquitto broker process with its own config, port and temporary directory.
///
/// Created by [`Mosquitto::start`] or [`Mosquitto::builder`]. Dropping it kills the
/// broker (SIGKILL) if it is running and removes the temporary directory.
#[derive(Debug)]
pub struct Mosquitto {
    dir: PathBuf,
    port: u16,
    /// The ports of the extra listeners, in the order they were added.
    extra_ports: Vec<u16>,
    /// The current process; `None` once it has exited and been reaped.
    child: Option<Child>,
    /// The pid of the current (or last) process.
    pid: u32,
    /// CPU time used by the processes of this instance that have already exited.
    cpu_done: Duration,
}

/// Options for a [`Mosquitto`] broker; [`MosquittoBuilder::start`] starts it.
///
/// The default is the config listed in the [module documentation](self), without
/// persistence.
#[derive(Debug, Default)]
pub struct MosquittoBuilder {
    persistence: bool,
    autosave_interval: Option<u32>,
    lines: Vec<String>,
    /// Extra listeners: the lines that follow `listener PORT 127.0.0.1`.
    listeners: Vec<Vec<String>>,
}

impl MosquittoBuilder {
    /// Turns persistence on or off (default off). On adds `persistence true` and
    /// `persistence_location DIR/`, where DIR is the instance's temporary directory,
    /// which [`Mosquitto::restart`] keeps. Mosquitto writes its database on SIGTERM
    /// ([`Mosquitto::stop`]) and every `autosave_interval` seconds, not on SIGKILL
    /// ([`Mosquitto::kill`]).
    #[must_use]
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// Adds `autosave_interval SECS`. Unset, mosquitto's default applies (1800 s).
    #[must_use]
    pub fn autosave_interval(mut self, secs: u32) -> Self {
        self.autosave_interval = Some(secs);
        self
    }

    /// Appends one line to the config, verbatim, after the defaults and the
    /// builder's options. Do not change `log_dest`: [`Mosquitto::log`] reads the
    /// log file.
    #[must_use]
    pub fn config_line(mut self, line: impl Into<String>) -> Self {
        self.lines.push(line.into());
        self
    }

    /// Adds a listener on a port of its own (`listener PORT 127.0.0.1`, then
    /// `lines`, such as `protocol websockets` or `certfile ...`), after every other
    /// line; [`Mosquitto::listener_port`] gives its port, by the order added.
    #[must_use]
    pub fn listener<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.listeners
            .push(lines.into_iter().map(Into::into).collect());
        self
    }

    /// Starts the broker and waits until it accepts TCP connections.
    ///
    /// Each attempt uses a fresh ephemeral port; if the broker exits or is not
    /// ready within 10 s, it is killed and started again on another port, up to 5
    /// attempts in all.
    ///
    /// # Panics
    ///
    /// If the temporary directory cannot be made or the broker does not start in 5
    /// attempts; the message holds the broker's log and output.
    pub fn start(self) -> Mosquitto {
        let dir = make_temp_dir();
        let mut broker = Mosquitto {
            dir,
            port: 0,
            extra_ports: Vec::new(),
            child: None,
            pid: 0,
            cpu_done: Duration::ZERO,
        };
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            broker.port = free_port();
            broker.extra_ports = self.listeners.iter().map(|_| free_port()).collect();
            let config = self.config(&broker.dir, broker.port, &broker.extra_ports);
            fs::write(broker.config_path(), config).unwrap_or_else(|e| {
                panic!(
                    "cannot write mosquitto config {}: {e}",
                    broker.config_path().display()
                )
            });
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(why) => {
                    let _ = writeln!(failures, "attempt {attempt} (port {}): {why}", broker.port);
                }
            }
        }
        panic!(
            "mosquitto did not start in {START_ATTEMPTS} attempts:\n{failures}\n{}",
            broker.diagnostics()
        );
    }

    fn config(&self, dir: &Path, port: u16, extra_ports: &[u16]) -> String {
        let mut config = format!(
            "user root\n\
             per_listener_settings false\n\
             allow_anonymous true\n\
             listener {port} 127.0.0.1\n\
             max_queued_messages 0\n\
             max_inflight_messages 0\n\
             log_dest file {}\n\
             log_type all\n\
             connection_messages true\n",
            dir.join(LOG_FILE).display()
        );
        if self.persistence {
            let _ = writeln!(config, "persistence true");
            let _ = writeln!(config, "persistence_location {}/", dir.display());
        }
        if let Some(secs) = self.autosave_interval {
            let _ = writeln!(config, "autosave_interval {secs}");
        }
        for line in &self.lines {
            let _ = writeln!(config, "{line}");
        }
        for (lines, port) in self.listeners.iter().zip(extra_ports) {
            let _ = writeln!(config, "listener {port} 127.0.0.1");
            for line in lines {
                let _ = writeln!(config, "{line}");
            }
        }
        config
    }
}

impl Mosquitto {
    /// A builder for a broker with options; see [`MosquittoBuilder`].
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    /// Starts a broker with the default config (see [`MosquittoBuilder`]) and waits
    /// until it accepts TCP connections.
    ///
    /// # Panics
    ///
    /// As [`MosquittoBuilder::start`].
    pub fn start() -> Mosquitto {
        Self::builder().start()
    }

    /// The TCP port the broker listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `index`th listener added with
    /// [`MosquittoBuilder::listener`].
    ///
    /// # Panics
    ///
    /// If there is no such listener.
    pub fn listener_port(&self, index: usize) -> u16 {
        self.extra_ports
            .get(index)
            .copied()
            .expect("no listener with this index")
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The pid of the current broker process (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill), of the process that ended; it changes on
    /// [`restart`](Self::restart)).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temporary directory holding the config, the log and the persistence
    /// database. Removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends SIGTERM and waits for the broker to exit: mosquitto saves its
    /// persistence database then. After 10 s without exit, sends SIGKILL. Does
    /// nothing if the broker is not running.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        let pid = self.pid.to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if sent && self.wait_exit(STOP_TIMEOUT) {
            return;
        }
        self.kill();
    }

    /// Sends SIGKILL and waits for the broker to exit: nothing is saved. Does
    /// nothing if the broker is not running.
    ///
    /// # Panics
    ///
    /// If the process does not exit within 10 s of SIGKILL.
    pub fn kill(&mut self) {
        if !self.is_running() {
            return;
        }
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        if !self.wait_exit(KILL_TIMEOUT) {
            // Not a zombie yet after 10 s: block in wait() rather than leak it.
            if let Some(mut child) = self.child.take() {
                child.wait().expect("wait for killed mosquitto");
            }
        }
    }

    /// Starts the broker again, on the same port with the same config and
    /// persistence directory, and waits until it accepts TCP connections. If it is
    /// running, [`stop`](Self::stop)s it first (so it saves its database).
    ///
    /// Retries for up to 5 s if the broker cannot bind its port yet.
    ///
    /// # Panics
    ///
    /// If the broker does not start; the message holds its log and output.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + RESTART_RETRY;
        let mut failures = String::new();
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(why) => {
                    let _ = writeln!(failures, "{why}");
                    if Instant::now() >= deadline {
                        panic!(
                            "mosquitto did not restart on port {}:\n{failures}\n{}",
                            self.port,
                            self.diagnostics()
                        );
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Whether the broker process is still running. Reaps it if it has exited.
    pub fn is_running(&mut self) -> bool {
        !self.poll_exit()
    }

    /// The broker's log file so far, across restarts (`log_type all`,
    /// `connection_messages true`). Empty if there is none yet.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.join(LOG_FILE))
    }

    /// Total CPU time (user + system) used so far by the broker processes of this
    /// instance, read from `/proc/PID/stat`: the current process's, plus that of
    /// the processes that ended before a [`restart`](Self::restart) (sampled just
    /// before they were reaped). So it never decreases, and differences between two
    /// calls are safe.
    pub fn cpu_time(&self) -> Duration {
        let current = match &self.child {
            Some(_) => read_stat(self.pid).map_or(Duration::ZERO, |stat| stat.cpu),
            None => Duration::ZERO,
        };
        self.cpu_done + current
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Spawns mosquitto with the config file and waits until it is ready. On
    /// failure the process has exited and been reaped, and the error says why.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        // Readiness looks for "running" in what this process appends to the log.
        let log_start = fs::metadata(self.dir.join(LOG_FILE)).map_or(0, |m| m.len());
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(OUTPUT_FILE))
            .expect("open mosquitto output file");
        let output_err = output.try_clone().expect("clone output file handle");
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {MOSQUITTO}: {e}"));
        self.pid = child.id();
        self.child = Some(child);

        let started = Instant::now();
        let mut first_accept: Option<Instant> = None;
        loop {
            if self.poll_exit() {
                return Err(format!("pid {} exited before it was ready", self.pid));
            }
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok() {
                // Something accepts on the port; make sure it is this broker and
                // not a process that took the port first.
                let since = *first_accept.get_or_insert_with(Instant::now);
                let said_running = log_since(&self.dir.join(LOG_FILE), log_start)
                    .lines()
                    .any(|line| line.contains("mosquitto version") && line.ends_with(" running"));
                if said_running || since.elapsed() >= READY_WITHOUT_LOG {
                    // It may have failed to bind just now, while another process
                    // answered.
                    if !self.poll_exit() {
                        return Ok(());
                    }
                    return Err(format!("pid {} exited before it was ready", self.pid));
                }
            }
            if started.elapsed() >= READY_TIMEOUT {
                self.kill();
                return Err(format!(
                    "pid {} did not accept connections within {READY_TIMEOUT:?}",
                    self.pid
                ));
            }
            thread::sleep(POLL);
        }
    }

    /// Polls for the exit of the current process for up to `timeout`; true once it
    /// has exited and been reaped.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.poll_exit() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// True if there is no current process any more. Reaps an exited process,
    /// adding the CPU time it used (read while it is a zombie) to `cpu_done`.
    fn poll_exit(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        let exited = match read_stat(self.pid) {
            Some(stat) if stat.state == 'Z' || stat.state == 'X' => {
                // A zombie: its final CPU time is still readable until it is reaped.
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => {
                        self.cpu_done += stat.cpu;
                        true
                    }
                    Ok(None) => false,
                }
            }
            Some(_) => false,
            // No /proc entry while unreaped: should not happen; fall back on wait.
            None => !matches!(child.try_wait(), Ok(None)),
        };
        if exited {
            self.child = None;
        }
        exited
    }

    /// The log and the process output, for panic messages.
    fn diagnostics(&self) -> String {
        format!(
            "--- {} ---\n{}--- {} ---\n{}--- {} ---\n{}",
            CONFIG_FILE,
            read_lossy(&self.config_path()),
            LOG_FILE,
            self.log(),
            OUTPUT_FILE,
            read_lossy(&self.dir.join(OUTPUT_FILE)),
        )
    }
}

impl Drop for Mosquitto {
    /// Kills the broker (SIGKILL) if it is running, waits for it, and removes the
    /// temporary directory. Never panics.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What this module reads from `/proc/PID/stat`.
struct Stat {
    state: char,
    cpu: Duration,
}

/// Reads the state and the CPU time (utime + stime) of a process.
fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE ..." where COMM may hold spaces and parentheses: the
    // fields start after the last ')'. utime and stime are fields 14 and 15 (from
    // 1), so 11 and 12 after the state (field 3).
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let mut fields = fields.skip(10);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Stat {
        state,
        cpu: ticks_to_duration(utime + stime),
    })
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let hz = clock_ticks_per_second();
    let nanos = u128::from(ticks % hz) * 1_000_000_000 / u128::from(hz);
    Duration::new(ticks / hz, u32::try_from(nanos).unwrap_or(0))
}

/// `getconf CLK_TCK`, read once.
fn clock_ticks_per_second() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let output = Command::new("getconf")
            .arg("CLK_TCK")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `getconf CLK_TCK`: {e}"));
        let text = String::from_utf8_lossy(&output.stdout);
        match text.trim().parse::<u64>() {
            Ok(hz) if output.status.success() && hz > 0 => hz,
            _ => panic!(
                "`getconf CLK_TCK` failed ({}): {text:?} {:?}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    })
}

/// A port that was free a moment ago: bind `127.0.0.1:0`, read it, release it.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A new, empty directory under the system temporary directory.
pub(crate) fn make_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mqtt-tests-mosquitto-{}-{n}-{nanos}",
            std::process::id()
        ));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map_or_else(
        |_| String::new(),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// What was appended to a file after byte `start`.
fn log_since(path: &Path, start: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(path) {
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = file.read_to_end(&mut text);
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}
