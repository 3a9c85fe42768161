//! The `mqtt` tool end to end, against mosquitto brokers the tests start on
//! loopback (and the quickstart's embedded broker). Each test runs the built
//! binary as a child process and waits on what it prints (explicit signals: its
//! events on stderr, its exit), never on sleeps.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use mqtt_tests::broker::Mosquitto;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const MQTT: &str = env!("CARGO_BIN_EXE_mqtt");
/// A bound on every wait (a broken build fails instead of hanging).
const WAIT: Duration = Duration::from_secs(60);

fn url(broker: &Mosquitto) -> String {
    format!("mqtt://{}", broker.addr())
}

/// A directory removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "mqtt-cli-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished run printed.
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Runs `mqtt args...` to its end, with `stdin` as its input.
async fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(MQTT)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("MQTT_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feed = tokio::spawn(async move {
        let _ = input.write_all(&stdin).await;
    });
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("mqtt {args:?} did not finish"))
        .unwrap();
    feed.await.unwrap();
    Output {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `mqtt`, its stderr lines forwarded as they come.
struct Running {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(MQTT)
            .args(args)
            .env_remove("RUST_LOG")
            // Events without colours, so that `total=` is plain text.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line for which `f` is true; returns it.
    async fn line(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if f(&line) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(WAIT, wait).await {
            Ok(Some(line)) => line,
            _ => panic!("no stderr line {what}; seen:\n{}", self.seen.join("\n")),
        }
    }

    /// Waits until the source is subscribed (`consume.started`, with -v).
    async fn started(&mut self) {
        self.line("consume.started", |l| l.contains("consume.started"))
            .await;
    }

    /// Waits until at least `n` lines were flushed and acked (with -v).
    async fn flushed(&mut self, n: u64) -> u64 {
        let line = self
            .line(&format!("total >= {n}"), |l| {
                total(l).is_some_and(|t| t >= n)
            })
            .await;
        total(&line).unwrap()
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait(mut self) -> (ExitStatus, String, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exit")
            .unwrap();
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).await.unwrap();
        }
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        (status, stdout, self.seen.join("\n"))
    }
}

/// `total=N` of a `consume.flushed` event.
fn total(line: &str) -> Option<u64> {
    if !line.contains("consume.flushed") {
        return None;
    }
    let at = line.find("total=")? + "total=".len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The JSON lines of a file, each parsed.
fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `count` numbered lines published on `topic` at `qos` through the tool.
async fn publish_numbered(url: &str, topic: &str, qos: &str, range: std::ops::Range<u64>) {
    let input: String = range.map(|i| format!("m-{i:06}\n")).collect();
    let out = run(
        &["publish", "-b", url, "-t", topic, "-q", qos, "--stdin"],
        input.as_bytes(),
    )
    .await;
    assert_eq!(out.code(), 0, "publish: {}", out.stderr);
}

/// `mqtt publish --format json --file FILE`: a capture replayed.
async fn replay(url: &str, file: &Path) -> Output {
    run(
        &[
            "publish",
            "-b",
            url,
            "--format",
            "json",
            "--file",
            file.to_str().unwrap(),
        ],
        b"",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_into_a_file_killed_and_restarted_loses_nothing() {
    let broker = Mosquitto::start();
    let url = url(&broker);
    let dir = Dir::new("kill");
    let file = dir.join("out.jsonl");
    let file_arg = file.to_str().unwrap();
    let args = [
        "-v",
        "consume",
        "-b",
        &url,
        "-t",
        "kill/#",
        "-q",
        "1",
        "-i",
        "cli-kill",
        "-o",
        file_arg,
        "--batch",
        "50",
        "--max-in-flight",
        "20",
    ];
    const N: u64 = 3000;
    // The persistent session exists from the first run on.
    let mut consumer = Running::start(&args);
    consumer.started().await;
    let publisher = {
        let url = url.clone();
        tokio::spawn(async move { publish_numbered(&url, "kill/a", "1", 0..N).await })
    };
    // Killed twice mid-stream: after some lines, and again after more.
    for (round, at) in [(0, 300u64), (1, 1200)] {
        let got = consumer.flushed(at).await;
        consumer.signal(9);
        let (status, _, _) = consumer.wait().await;
        assert_eq!(status.code(), None, "round {round}: killed by SIGKILL");
        assert!(got >= at);
        consumer = Running::start(&args);
        consumer.started().await;
    }
    publisher.await.unwrap();
    // The last run: until every number is in the file, then SIGTERM drains.
    let unique = |path: &Path| -> BTreeSet<String> {
        json_lines(path)
            .iter()
            .map(|v| v["payload"].as_str().unwrap().to_owned())
            .collect()
    };
    loop {
        consumer
            .line("a flushed batch", |l| total(l).is_some())
            .await;
        if unique(&file).len() as u64 == N {
            break;
        }
    }
    consumer.signal(15);
    let (status, _, stderr) = consumer.wait().await;
    assert_eq!(
        status.code(),
        Some(0),
        "graceful drain on SIGTERM: {stderr}"
    );
    assert!(
        stderr.contains("consumed "),
        "a summary on stderr: {stderr}"
    );
    // Every line complete and parseable (json_lines panics otherwise), every
    // message there: at least once into the file.
    let lines = json_lines(&file);
    let got = unique(&file);
    assert_eq!(got.len() as u64, N);
    assert_eq!(got.first().map(String::as_str), Some("m-000000"));
    assert_eq!(got.last().map(String::as_str), Some("m-002999"));
    assert!(lines.len() as u64 >= N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_from_stdin_then_replay_the_capture_into_another_broker() {
    let a = Mosquitto::start();
    let b = Mosquitto::start();
    let (url_a, url_b) = (url(&a), url(&b));
    let dir = Dir::new("replay");
    let capture = dir.join("capture.jsonl");
    let replayed = dir.join("replayed.jsonl");

    // Capture: 100 raw lines from stdin at QoS 2, a message with properties, a
    // binary payload.
    let mut consumer = Running::start(&[
        "-v",
        "consume",
        "-b",
        &url_a,
        "-t",
        "in/#",
        "-q",
        "2",
        "-n",
        "102",
        "-o",
        capture.to_str().unwrap(),
    ]);
    consumer.started().await;
    publish_numbered(&url_a, "in/lines", "2", 0..100).await;
    let out = run(
        &[
            "publish",
            "-b",
            &url_a,
            "-t",
            "in/props",
            "-m",
            "{\"c\":21.5}",
            "-q",
            "1",
            "--content-type",
            "application/json",
            "--user-property",
            "site=7",
            "--user-property",
            "site=8",
            "--correlation-data",
            "req-1",
            "--response-topic",
            "out/answers",
            "--message-expiry",
            "3600",
            "--utf8",
        ],
        b"",
    )
    .await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let out = run(
        &[
            "publish", "-b", &url_a, "-t", "in/bin", "--stdin", "-q", "1",
        ],
        &[0x00, 0xff, 0xfe, b'\n'],
    )
    .await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let (status, _, stderr) = consumer.wait().await;
    assert_eq!(status.code(), Some(0), "--count 102 reached: {stderr}");

    let lines = json_lines(&capture);
    assert_eq!(lines.len(), 102);
    let numbered: Vec<&str> = lines
        .iter()
        .filter(|l| l["topic"] == "in/lines")
        .map(|l| l["payload"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("m-{i:06}")).collect();
    assert_eq!(numbered, expected, "every line, in order");
    assert!(lines
        .iter()
        .filter(|l| l["topic"] == "in/lines")
        .all(|l| l["qos"] == 2));
    let props = lines.iter().find(|l| l["topic"] == "in/props").unwrap();
    assert_eq!(props["properties"]["content_type"], "application/json");
    assert_eq!(
        props["properties"]["user_properties"],
        serde_json::json!([["site", "7"], ["site", "8"]])
    );
    assert_eq!(props["properties"]["response_topic"], "out/answers");
    assert_eq!(props["properties"]["payload_format"], 1);
    assert_eq!(props["properties"]["correlation_data"], "cmVxLTE=");
    let bin = lines.iter().find(|l| l["topic"] == "in/bin").unwrap();
    assert_eq!(
        (bin["encoding"].as_str(), bin["payload"].as_str()),
        (Some("base64"), Some("AP/+"))
    );

    // Replay the capture into broker B, captured there the same way.
    let mut consumer = Running::start(&[
        "-v",
        "consume",
        "-b",
        &url_b,
        "-t",
        "in/#",
        "-q",
        "2",
        "-n",
        "102",
        "-o",
        replayed.to_str().unwrap(),
    ]);
    consumer.started().await;
    let out = replay(&url_b, &capture).await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("published 102 messages"),
        "{}",
        out.stderr
    );
    let (status, _, stderr) = consumer.wait().await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The same messages: topic, QoS, payload and properties (the times differ).
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("received_at");
        v
    };
    let again: Vec<Value> = json_lines(&replayed).iter().map(strip).collect();
    let first: Vec<Value> = lines.iter().map(strip).collect();
    assert_eq!(again.len(), first.len());
    for line in &first {
        let mut expect = line.clone();
        // Message Expiry counts down at the broker: compared apart.
        let expiry = expect["properties"]
            .as_object_mut()
            .and_then(|p| p.remove("message_expiry"));
        let found = again.iter().any(|l| {
            let mut l = l.clone();
            let e = l["properties"]
                .as_object_mut()
                .and_then(|p| p.remove("message_expiry"));
            l == expect && e.is_some() == expiry.is_some()
        });
        assert!(found, "replayed: {line}");
    }

    // A bad line stops the replay, names the line and fails.
    let bad = dir.join("bad.jsonl");
    std::fs::write(&bad, "{\"topic\":\"in/x\",\"payload\":\"ok\"}\nnot json\n").unwrap();
    let out = replay(&url_b, &bad).await;
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("line 2:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("published 1 messages"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_the_limits_of_the_broker() {
    let broker = Mosquitto::builder()
        .config_line("max_inflight_messages 7")
        .config_line("max_packet_size 2048")
        .config_line("max_qos 1")
        .config_line("max_keepalive 30")
        .config_line("retain_available false")
        .start();
    let url = url(&broker);
    let out = run(&["check", "-b", &url, "--json"], b"").await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["connected"], true);
    assert_eq!(v["receive_maximum"], 7);
    assert_eq!(v["maximum_packet_size"], 2048);
    assert_eq!(v["maximum_qos"], 1);
    assert_eq!(v["server_keep_alive"], 30);
    assert_eq!(v["retain_available"], false);
    assert_eq!(v["shared_subscription_available"], true);
    assert!(v["assigned_client_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(v["effective"]["in_flight_to_broker"], 7);
    assert_eq!(v["effective"]["keep_alive"], 30);

    let out = run(&["check", "-b", &url, "-i", "checker"], b"").await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let text = out.stdout;
    for expected in [
        "connected to",
        "client id                checker_check",
        "receive maximum          7",
        "at most 7 QoS 1/2 publishes in flight",
        "maximum QoS              1",
        "publishes above QoS 1 refused before sending",
        "maximum packet size      2,048 B",
        "retain available         no",
        "server keep alive        30 s",
        "a ping after 30 s of silence",
    ] {
        assert!(text.contains(expected), "`{expected}` in:\n{text}");
    }
    // 3.1.1: no limits to show, and it says so.
    let out = run(&["check", "-b", &url, "--mqtt-version", "3.1.1"], b"").await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("MQTT 3.1.1: the CONNACK carries no limits"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_zero_loss() {
    let broker = Mosquitto::start();
    let url = url(&broker);
    let dir = Dir::new("bench");
    let plot = dir.join("latency.svg");
    for (qos, n, p, c) in [
        ("1", "3000", "2", "2"),
        ("2", "600", "1", "1"),
        ("0", "500", "1", "1"),
    ] {
        let out = run(
            &[
                "bench",
                "-b",
                &url,
                "-n",
                n,
                "-q",
                qos,
                "-p",
                p,
                "-C",
                c,
                "-s",
                "128",
                "--json",
                "--plot",
                plot.to_str().unwrap(),
            ],
            b"",
        )
        .await;
        assert_eq!(out.code(), 0, "QoS {qos}: {}", out.stderr);
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let n: u64 = n.parse().unwrap();
        assert_eq!(v["published"], n, "{v}");
        assert_eq!(v["received"], n, "{v}");
        assert_eq!(v["lost"], 0, "{v}");
        assert_eq!(v["duplicates"], 0, "{v}");
        assert_eq!(v["latency_us"]["count"], n);
        let (p50, p99, max) = (
            v["latency_us"]["p50"].as_u64().unwrap(),
            v["latency_us"]["p99"].as_u64().unwrap(),
            v["latency_us"]["max"].as_u64().unwrap(),
        );
        assert!(0 < p50 && p50 <= p99 && p99 <= max, "{v}");
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert!(svg.starts_with("<svg") && svg.matches("<circle").count() as u64 == n);
    }
    // The text report says the same.
    let out = run(&["bench", "-b", &url, "-n", "200"], b"").await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("lost: 0  duplicates: 0"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("p99.9"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_unreachable_brokers_give_the_documented_exit_codes() {
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = format!("mqtt://127.0.0.1:{closed}");
    let dir = Dir::new("errors");
    let good_config = dir.join("good.toml");
    std::fs::write(
        &good_config,
        "brokers = [\"mqtt://127.0.0.1:1\"]\nclient_id = \"x\"\ntopics = [{ topic = \"a\" }]\n",
    )
    .unwrap();
    let bad_config = dir.join("bad.toml");
    std::fs::write(
        &bad_config,
        "brokers = [\"mqtt://127.0.0.1:1\"]\nno_such_option = 1\n",
    )
    .unwrap();

    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["frobnicate"], 2, "unrecognized subcommand"),
        (vec!["consume", "-t", "a", "-q", "3"], 2, "not a QoS"),
        (vec!["consume", "-b", &nowhere], 2, "needs a topic"),
        (
            vec!["consume", "-t", "a", "--timeout", "soon"],
            2,
            "not a duration",
        ),
        (
            vec!["publish", "-b", &nowhere, "-t", "a"],
            2,
            "needs what to send",
        ),
        (
            vec!["consume", "-c", bad_config.to_str().unwrap(), "-t", "a"],
            2,
            "no_such_option",
        ),
        (
            vec!["consume", "-c", good_config.to_str().unwrap(), "-q", "2"],
            2,
            "--qos applies to the -t topics",
        ),
        (
            vec!["consume", "-b", "mqtt://127.0.0.1:1", "-t", "a/#/b"],
            2,
            "topics",
        ),
        (vec!["check", "-b", &nowhere], 3, "could not connect to"),
        (
            vec!["consume", "-b", &nowhere, "-t", "a"],
            3,
            "could not connect to",
        ),
        (
            vec!["publish", "-b", &nowhere, "-t", "a", "-m", "x"],
            3,
            "could not connect to",
        ),
        (
            vec!["bench", "-b", &nowhere, "-n", "10"],
            3,
            "could not connect to",
        ),
    ];
    for (args, code, says) in cases {
        let out = run(&args, b"").await;
        assert_eq!(out.code(), code, "mqtt {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(says),
            "mqtt {args:?}: `{says}` in {}",
            out.stderr
        );
        assert!(out.stdout.is_empty(), "errors go to stderr: {}", out.stdout);
    }
    let out = run(&["check", "-b", &nowhere], b"").await;
    assert!(
        out.stderr.contains(&nowhere),
        "the server is named: {}",
        out.stderr
    );

    // A broker that refuses the credentials: exit 3, and the password is never
    // printed, neither from the flag nor from the URL.
    let passwords = dir.join("passwords");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["ingest", "right-password"])
        .status()
        .unwrap();
    assert!(status.success());
    let broker = Mosquitto::builder()
        .config_line("allow_anonymous false")
        .config_line(format!("password_file {}", passwords.display()))
        .start();
    let secret = "hunter2-wrong";
    let with_url = format!("mqtt://ingest:{secret}@{}", broker.addr());
    for args in [
        vec!["check", "-b", &with_url],
        vec!["-vvv", "consume", "-b", &with_url, "-t", "a"],
    ] {
        let out = run(&args, b"").await;
        assert_eq!(out.code(), 3, "{}", out.stderr);
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "{}",
            out.stderr
        );
    }
    let ok = url(&broker);
    let out = run(
        &[
            "-vvv",
            "check",
            "-b",
            &ok,
            "-u",
            "ingest",
            "--password",
            secret,
        ],
        b"",
    )
    .await;
    assert_eq!(out.code(), 3, "{}", out.stderr);
    assert!(
        out.stderr.to_lowercase().contains("not authorized")
            || out.stderr.contains("Refused")
            || out.stderr.contains("refused"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(secret), "{}", out.stderr);
    let out = run(
        &[
            "check",
            "-b",
            &ok,
            "-u",
            "ingest",
            "--password",
            "right-password",
        ],
        b"",
    )
    .await;
    assert_eq!(out.code(), 0, "{}", out.stderr);

    // --timeout before --count: exit 4; a topic the client refuses: exit 1.
    let broker = Mosquitto::start();
    let url = url(&broker);
    let out = run(
        &[
            "consume",
            "-b",
            &url,
            "-t",
            "quiet/#",
            "-n",
            "5",
            "--timeout",
            "300ms",
        ],
        b"",
    )
    .await;
    assert_eq!(out.code(), 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("after 0 of 5 messages"),
        "{}",
        out.stderr
    );
    let out = run(&["publish", "-b", &url, "-t", "a/#", "-m", "x"], b"").await;
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("failed: the message (topic a/#)"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_serves_its_metrics_over_http() {
    let broker = Mosquitto::start();
    let url = url(&broker);
    let mut consumer = Running::start(&[
        "-v",
        "consume",
        "-b",
        &url,
        "-t",
        "m/#",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let line = consumer
        .line("metrics address", |l| l.starts_with("metrics: http://"))
        .await;
    let addr = line
        .trim_start_matches("metrics: http://")
        .trim_end_matches("/metrics")
        .to_owned();
    consumer.started().await;
    publish_numbered(&url, "m/x", "1", 0..3).await;
    consumer.flushed(3).await;
    let get = |path: &'static str| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(metrics.contains("mqtt_source_acked_total 3"), "{metrics}");
    assert!(metrics.contains("mqtt_source_connections 1"), "{metrics}");
    let health = get("/health").await;
    assert!(
        health.starts_with("HTTP/1.1 200 OK") && health.contains("\"healthy\":true"),
        "{health}"
    );
    assert!(get("/nothing").await.starts_with("HTTP/1.1 404"));
    consumer.signal(2);
    let (status, stdout, _) = consumer.wait().await;
    assert_eq!(status.code(), Some(0), "SIGINT drains");
    assert_eq!(
        stdout.lines().count(),
        3,
        "the three lines on stdout: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_runs_on_the_embedded_broker_and_on_mosquitto() {
    let dir = Dir::new("quickstart");
    let file = dir.join("readings.jsonl");
    let out = run(
        &[
            "quickstart",
            "-n",
            "6000",
            "--devices",
            "60",
            "--json",
            "-o",
            file.to_str().unwrap(),
        ],
        b"",
    )
    .await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["readings"], 6000);
    assert_eq!(v["published"], 6000);
    assert_eq!(v["file_readings"], 6000, "every reading in the file: {v}");
    assert_eq!(v["alerts"], 600);
    assert!(v["broker"].as_str().unwrap().contains("rumqttd"));
    assert!(v["metrics"]["acked"].as_u64().unwrap() >= 6000);
    assert!(v["latency_us"]["count"].as_u64().unwrap() >= 6000);
    // The file: one JSON line per message, alerts at QoS 2.
    let lines = json_lines(&file);
    assert!(lines
        .iter()
        .any(|l| l["qos"] == 2 && l["topic"].as_str().unwrap().ends_with("/alerts")));

    let broker = Mosquitto::start();
    let out = run(
        &[
            "quickstart",
            "-b",
            &url(&broker),
            "-n",
            "3000",
            "--rate",
            "0",
        ],
        b"",
    )
    .await;
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stdout.contains("lost: 0"), "{}", out.stdout);
    assert!(out.stdout.contains("p99.9"), "{}", out.stdout);
}

#[tokio::test]
async fn help_and_completions() {
    let out = run(&["--help"], b"").await;
    assert_eq!(out.code(), 0);
    for word in [
        "consume",
        "publish",
        "bench",
        "check",
        "quickstart",
        "completions",
        "Exit codes",
    ] {
        assert!(out.stdout.contains(word), "{word} in --help");
    }
    let out = run(&["consume", "--help"], b"").await;
    assert!(out.stdout.contains("--metrics-addr") && out.stdout.contains("fsync"));
    for shell in ["bash", "zsh", "fish"] {
        let out = run(&["completions", shell], b"").await;
        assert_eq!(out.code(), 0);
        assert!(out.stdout.contains("quickstart"), "{shell}");
    }
}
