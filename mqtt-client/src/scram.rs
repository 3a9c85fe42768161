//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced-authentication
//! method: the worked example of [`Authenticator`]. Crate feature `scram`.
//!
//! ```text
//!   CONNECT  method "SCRAM-SHA-256", data "n,,n=user,r=<client nonce>"
//!   <- AUTH 0x18   "r=<client nonce><server nonce>,s=<salt>,i=<iterations>"
//!   AUTH 0x18 ->   "c=biws,r=<nonce>,p=<client proof>"
//!   <- CONNACK 0x00  "v=<server signature>"       checked: the server knew the password too
//! ```
//!
//! The same exchange serves a re-authentication ([`crate::Client::reauthenticate`]).
//! The user name and password are used as given (UTF-8, not SASLprep-normalised:
//! the same for ASCII credentials). A server that asks for more than
//! [`Scram::with_max_iterations`] (default 1,000,000) PBKDF2 iterations is refused,
//! so that a hostile server cannot make the client spin. Channel binding is not
//! used (`n,,`); TLS below MQTT protects the exchange from eavesdroppers.
//! Neither the password nor the derived keys appear in `Debug`.

use std::fmt;
use std::num::NonZeroU32;

use bytes::Bytes;
use ring::rand::SecureRandom;

use crate::base64;
use crate::engine::{AuthError, Authenticator};

/// The method name.
pub const METHOD: &str = "SCRAM-SHA-256";

/// A SCRAM-SHA-256 client.
pub struct Scram {
    user: String,
    password: String,
    max_iterations: u32,
    /// A fixed client nonce (tests against published vectors); random otherwise.
    fixed_nonce: Option<String>,
    state: State,
}

enum State {
    Idle,
    /// client-first-message-bare and the client nonce.
    SentFirst {
        first_bare: String,
        nonce: String,
    },
    /// The server signature to expect.
    SentFinal {
        server_signature: Vec<u8>,
    },
}

impl Scram {
    /// A client for `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
            max_iterations: 1_000_000,
            fixed_nonce: None,
            state: State::Idle,
        }
    }

    /// The most PBKDF2 iterations accepted from the server.
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// Uses `nonce` instead of 18 random bytes (for tests against RFC 7677's
    /// example; never in production: a nonce must not repeat).
    pub fn with_fixed_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.fixed_nonce = Some(nonce.into());
        self
    }

    fn nonce(&self) -> Result<String, AuthError> {
        if let Some(n) = &self.fixed_nonce {
            return Ok(n.clone());
        }
        let mut bytes = [0u8; 18];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AuthError("no random numbers for the SCRAM nonce".to_owned()))?;
        Ok(base64::encode(&bytes))
    }
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("user", &self.user)
            .field("max_iterations", &self.max_iterations)
            .finish_non_exhaustive()
    }
}

fn fail(what: &str) -> AuthError {
    AuthError(format!("SCRAM-SHA-256: {what}"))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data).as_ref().to_vec()
}

/// `a=value` attributes of a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('='))
            .then(|| part.get(2..))
            .flatten()
    })
}

impl Authenticator for Scram {
    fn method(&self) -> &str {
        METHOD
    }

    fn start(&mut self) -> Result<Option<Bytes>, AuthError> {
        let nonce = self.nonce()?;
        let user = self.user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={user},r={nonce}");
        let message = format!("n,,{first_bare}");
        self.state = State::SentFirst { first_bare, nonce };
        Ok(Some(Bytes::from(message)))
    }

    fn respond(&mut self, data: Option<&[u8]>) -> Result<Option<Bytes>, AuthError> {
        let State::SentFirst { first_bare, nonce } =
            std::mem::replace(&mut self.state, State::Idle)
        else {
            return Err(fail("a server message out of turn"));
        };
        let server_first =
            std::str::from_utf8(data.ok_or_else(|| fail("no server-first-message"))?)
                .map_err(|_| fail("the server-first-message is not UTF-8"))?;
        if let Some(e) = attribute(server_first, 'e') {
            return Err(fail(&format!("the server refused: {e}")));
        }
        let combined =
            attribute(server_first, 'r').ok_or_else(|| fail("no nonce from the server"))?;
        if !combined.starts_with(&nonce) || combined.len() == nonce.len() {
            return Err(fail("the server's nonce does not extend ours"));
        }
        let salt = attribute(server_first, 's')
            .and_then(base64::decode)
            .ok_or_else(|| fail("no salt, or a salt that is not base64"))?;
        let iterations: u32 = attribute(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| fail("no iteration count"))?;
        if iterations > self.max_iterations {
            return Err(fail(&format!(
                "the server asks for {iterations} iterations, more than the {} allowed",
                self.max_iterations
            )));
        }
        let iterations =
            NonZeroU32::new(iterations).ok_or_else(|| fail("an iteration count of 0"))?;
        let mut salted = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            &salt,
            self.password.as_bytes(),
            &mut salted,
        );
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = ring::digest::digest(&ring::digest::SHA256, &client_key);
        let without_proof = format!("c=biws,r={combined}");
        let auth_message = format!("{first_bare},{server_first},{without_proof}");
        let client_signature = hmac(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        let server_signature = hmac(&server_key, auth_message.as_bytes());
        self.state = State::SentFinal { server_signature };
        Ok(Some(Bytes::from(format!(
            "{without_proof},p={}",
            base64::encode(&proof)
        ))))
    }

    fn finish(&mut self, data: Option<&[u8]>) -> Result<(), AuthError> {
        let State::SentFinal { server_signature } = std::mem::replace(&mut self.state, State::Idle)
        else {
            return Err(fail("the server accepted before the exchange was complete"));
        };
        let server_final = std::str::from_utf8(data.ok_or_else(|| {
            fail("no server-final-message: the server did not prove it knows the password")
        })?)
        .map_err(|_| fail("the server-final-message is not UTF-8"))?;
        if let Some(e) = attribute(server_final, 'e') {
            return Err(fail(&format!("the server refused: {e}")));
        }
        let verifier = attribute(server_final, 'v')
            .and_then(base64::decode)
            .ok_or_else(|| fail("no server signature"))?;
        let differs = verifier.len() != server_signature.len()
            || verifier
                .iter()
                .zip(&server_signature)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                != 0;
        if differs {
            return Err(fail(
                "the server signature does not verify: not the server that knows the password",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// RFC 7677, section 3: user "user", password "pencil".
    #[test]
    fn the_rfc_7677_example_exchange() {
        let mut scram = Scram::new("user", "pencil").with_fixed_nonce("rOprNGfwEbeRWgbNEkqO");
        let first = scram.start().unwrap().unwrap();
        assert_eq!(&first[..], b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = scram.respond(Some(server_first)).unwrap().unwrap();
        assert_eq!(
            &last[..],
            &b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="[..]
        );
        scram
            .finish(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
            .unwrap();
    }

    #[test]
    fn a_wrong_server_signature_or_a_hostile_server_is_refused() {
        let server_first = b"r=abcSERVER,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut scram = Scram::new("user", "pencil").with_fixed_nonce("abc");
        scram.start().unwrap();
        scram.respond(Some(server_first)).unwrap();
        let e = scram
            .finish(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
            .unwrap_err();
        assert!(e.0.contains("does not verify"), "{e}");

        let mut scram = Scram::new("user", "pencil").with_fixed_nonce("abc");
        scram.start().unwrap();
        scram.respond(Some(server_first)).unwrap();
        assert!(scram.finish(None).is_err(), "no server proof");

        for bad in [
            &b"r=xyzSERVER,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"[..], // nonce not ours
            b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",            // not extended
            b"r=abcS,s=!!,i=4096",                                 // salt not base64
            b"r=abcS,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000",     // too many iterations
            b"r=abcS,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            b"e=unknown-user",
        ] {
            let mut scram = Scram::new("user", "pencil").with_fixed_nonce("abc");
            scram.start().unwrap();
            assert!(
                scram.respond(Some(bad)).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut scram = Scram::new("user", "pencil");
        assert!(scram.respond(Some(server_first)).is_err(), "out of turn");
        assert!(!format!("{scram:?}").contains("pencil"));
    }

    #[test]
    fn user_names_are_escaped_and_nonces_are_random() {
        let mut a = Scram::new("a=b,c", "x");
        let first = a.start().unwrap().unwrap();
        assert!(first.starts_with(b"n,,n=a=3Db=2Cc,r="));
        let mut b = Scram::new("a=b,c", "x");
        assert_ne!(first, b.start().unwrap().unwrap());
    }
}
