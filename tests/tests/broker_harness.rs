//! The mosquitto harness (`mqtt_tests::broker`) against a real broker, driven with
//! raw TCP and hand-written MQTT 3.1.1 packets.

// Helpers outside `#[test]` functions assert by panicking too; clippy.toml allows
// that only inside the test functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use mqtt_tests::broker::Mosquitto;

/// CONNECT: MQTT 3.1.1, clean session, keep alive 60 s, empty client id.
const CONNECT: [u8; 14] = [
    0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00,
];
/// CONNACK: session not present, accepted.
const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
/// CONNACK: session not present, not authorized.
const CONNACK_NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];
/// PUBLISH QoS 0, RETAIN, topic "a/b", payload "hello".
const PUBLISH_RETAINED: [u8; 12] = [
    0x31, 0x0a, 0x00, 0x03, b'a', b'/', b'b', b'h', b'e', b'l', b'l', b'o',
];
/// SUBSCRIBE packet id 1, "a/b" at QoS 0.
const SUBSCRIBE: [u8; 10] = [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, b'a', b'/', b'b', 0x00];
/// SUBACK packet id 1, granted QoS 0.
const SUBACK: [u8; 5] = [0x90, 0x03, 0x00, 0x01, 0x00];
const PINGREQ: [u8; 2] = [0xc0, 0x00];
const PINGRESP: [u8; 2] = [0xd0, 0x00];

/// Opens a TCP connection to the broker and sends CONNECT; returns the stream and
/// the CONNACK.
fn connect_raw(broker: &Mosquitto) -> (TcpStream, [u8; 4]) {
    let mut stream = TcpStream::connect(broker.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(&CONNECT).unwrap();
    let mut connack = [0; 4];
    stream.read_exact(&mut connack).unwrap();
    (stream, connack)
}

/// An accepted MQTT session.
fn session(broker: &Mosquitto) -> TcpStream {
    let (stream, connack) = connect_raw(broker);
    assert_eq!(connack, CONNACK_ACCEPTED, "port {}", broker.port());
    stream
}

fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).unwrap();
    buf
}

/// PINGREQ and its PINGRESP: everything sent before has been processed.
fn ping(stream: &mut TcpStream) {
    stream.write_all(&PINGREQ).unwrap();
    assert_eq!(read_n(stream, 2), PINGRESP);
}

fn publish_retained(broker: &Mosquitto) {
    let mut stream = session(broker);
    stream.write_all(&PUBLISH_RETAINED).unwrap();
    ping(&mut stream);
}

/// Subscribes to "a/b" and returns whether the broker delivered a retained message.
fn has_retained(broker: &Mosquitto) -> bool {
    let mut stream = session(broker);
    stream.write_all(&SUBSCRIBE).unwrap();
    assert_eq!(read_n(&mut stream, 5), SUBACK);
    // The broker sends retained messages right after SUBACK, before it reads the
    // PINGREQ: the next packet tells.
    stream.write_all(&PINGREQ).unwrap();
    let first = read_n(&mut stream, 2);
    if first == PINGRESP {
        return false;
    }
    let mut publish = first;
    publish.extend(read_n(&mut stream, PUBLISH_RETAINED.len() - 2));
    assert_eq!(publish, PUBLISH_RETAINED);
    assert_eq!(read_n(&mut stream, 2), PINGRESP);
    true
}

fn assert_refused(broker: &Mosquitto) {
    let err = TcpStream::connect(broker.addr()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
}

/// Polls the log for `needle` for up to 5 s.
fn wait_for_log(broker: &Mosquitto, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = broker.log();
        if log.contains(needle) {
            return log;
        }
        assert!(Instant::now() < deadline, "{needle:?} not in log:\n{log}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the broker's log until `needle` occurs `count` times (5 s at most).
fn wait_for_log_count(broker: &Mosquitto, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = broker.log();
        if log.matches(needle).count() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not {count} times in log:\n{log}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_instances_get_different_ports_and_accept_connect() {
    let mut a = Mosquitto::start();
    let mut b = Mosquitto::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    assert_eq!(a.addr().ip(), Ipv4Addr::LOCALHOST);
    assert_eq!(a.addr().port(), a.port());
    assert!(a.is_running() && b.is_running());
    session(&a);
    session(&b);
    let dir = a.dir().to_path_buf();
    assert!(dir.join("mosquitto.log").is_file());
    drop(a);
    assert!(!dir.exists(), "the temporary directory is removed on drop");
    // The other instance is unaffected.
    session(&b);
}

#[test]
fn stop_refuses_connections_and_restart_reuses_the_port() {
    let mut broker = Mosquitto::start();
    let (port, first_pid) = (broker.port(), broker.pid());
    session(&broker);

    broker.stop();
    assert!(!broker.is_running());
    assert_refused(&broker);
    assert!(broker.log().contains("terminating"), "SIGTERM, not SIGKILL");
    broker.stop(); // no-op when stopped

    broker.restart();
    assert!(broker.is_running());
    assert_eq!(broker.port(), port);
    assert_ne!(broker.pid(), first_pid);
    session(&broker);

    // Restart while running stops first.
    let second_pid = broker.pid();
    broker.restart();
    assert_ne!(broker.pid(), second_pid);
    session(&broker);
}

#[test]
fn kill_ends_the_broker() {
    let mut broker = Mosquitto::start();
    session(&broker);
    broker.kill();
    assert!(!broker.is_running());
    assert_refused(&broker);
    assert!(
        !broker.log().contains("terminating"),
        "SIGKILL: no shutdown"
    );
    broker.kill(); // no-op when not running
    broker.restart();
    session(&broker);
}

#[test]
fn log_mentions_the_connection() {
    let broker = Mosquitto::start();
    let log = broker.log();
    assert!(log.contains("mosquitto version"), "{log}");
    assert!(log.contains(&format!("on port {}", broker.port())), "{log}");
    let _stream = session(&broker);
    wait_for_log(&broker, "New client connected from 127.0.0.1");
}

#[test]
fn cpu_time_is_read_and_never_decreases() {
    let mut broker = Mosquitto::start();
    let before = broker.cpu_time();
    for _ in 0..20 {
        session(&broker);
    }
    let running = broker.cpu_time();
    assert!(running >= before);
    broker.stop();
    let stopped = broker.cpu_time();
    assert!(stopped >= running, "{stopped:?} < {running:?}");
    broker.restart();
    assert!(broker.cpu_time() >= stopped);
}

#[test]
fn persistence_survives_stop_but_not_kill() {
    let mut broker = Mosquitto::builder().persistence(true).start();
    publish_retained(&broker);
    assert!(has_retained(&broker));

    broker.stop(); // saves
    broker.restart();
    assert!(has_retained(&broker), "retained message saved on SIGTERM");

    // A fresh instance: SIGKILL loses what came after the last save (none here,
    // the default autosave interval is 30 min).
    let mut fresh = Mosquitto::builder().persistence(true).start();
    publish_retained(&fresh);
    fresh.kill(); // no save
    fresh.restart();
    assert!(!has_retained(&fresh), "nothing saved on SIGKILL");
}

#[test]
fn autosave_interval_saves_without_shutdown() {
    let mut broker = Mosquitto::builder()
        .persistence(true)
        .autosave_interval(1)
        .start();
    const SAVING: &str = "Saving in-memory database";
    publish_retained(&broker);
    // The log names a save as it begins, and a save may have begun before the
    // message arrived: the second save begun after it proves one whole save
    // that holds it.
    let before = broker.log().matches(SAVING).count();
    wait_for_log_count(&broker, SAVING, before + 2);
    broker.kill();
    broker.restart();
    assert!(has_retained(&broker), "autosaved before SIGKILL");
}

#[test]
fn config_lines_come_after_the_defaults() {
    let broker = Mosquitto::builder()
        .config_line("allow_anonymous false")
        .start();
    let (_stream, connack) = connect_raw(&broker);
    assert_eq!(connack, CONNACK_NOT_AUTHORIZED);
}

#[test]
#[should_panic(expected = "not_a_mosquitto_option")]
fn a_broker_that_cannot_start_panics_with_its_output() {
    let _broker = Mosquitto::builder()
        .config_line("not_a_mosquitto_option 1")
        .start();
}
