//! Decodes MQTT packets from hex and prints them, or the error with the reason code a
//! receiver would send.
//!
//! ```text
//! cargo run -p mqtt-codec --example decode -- [--v311] HEX...
//! echo "30 0d 00 03 61 2f 62 00 68 65 6c 6c 6f 21 21" | cargo run -p mqtt-codec --example decode -- --v311
//! ```
//!
//! Several packets may follow one another in the input; whitespace is ignored.

// A command-line tool: printing is its job.
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::process::ExitCode;

use bytes::BytesMut;
use mqtt_codec::{Decoder, ProtocolVersion};

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            u8::from_str_radix(s, 16).map_err(|e| format!("{s:?}: {e}"))
        })
        .collect()
}

fn main() -> ExitCode {
    let mut version = ProtocolVersion::V5;
    let mut hex = String::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--v311" => version = ProtocolVersion::V311,
            "--v5" => version = ProtocolVersion::V5,
            _ => {
                hex.push_str(&arg);
                hex.push(' ');
            }
        }
    }
    if hex.trim().is_empty() && std::io::stdin().read_to_string(&mut hex).is_err() {
        eprintln!("could not read standard input");
        return ExitCode::FAILURE;
    }
    let bytes = match parse_hex(&hex) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("bad hex: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut buf = BytesMut::from(&bytes[..]);
    let mut decoder = Decoder::new(version);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => println!("{packet:#?}"),
            Ok(None) if buf.is_empty() => return ExitCode::SUCCESS,
            Ok(None) => {
                println!(
                    "incomplete: {} more byte(s) buffered, packet not finished",
                    buf.len()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                println!("error: {e}");
                println!(
                    "a receiver sends DISCONNECT with reason code {}",
                    e.reason_code()
                );
                return ExitCode::FAILURE;
            }
        }
    }
}
