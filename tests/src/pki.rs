//! Certificates made at test time: a CA, server and client certificates signed by
//! it, written as PEM files into a temporary directory of their own (removed on
//! drop). Nothing is checked in.
//!
//! Keys are ECDSA P-256 in PKCS#8 by default; [`KeyFormat`](crate::pki::KeyFormat) asks for SEC1, an RSA
//! key in PKCS#1 or an encrypted PKCS#8 key, converted with the `openssl` command
//! (Debian package `openssl`, which `.ci/run` installs).

#![allow(
    clippy::expect_used,
    reason = "test harness: a certificate that cannot be made is a test failure"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// How a key file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// ECDSA P-256, `PRIVATE KEY` (PKCS#8).
    Pkcs8,
    /// ECDSA P-256, `EC PRIVATE KEY` (SEC1).
    Sec1,
    /// RSA 2048, `RSA PRIVATE KEY` (PKCS#1).
    Pkcs1Rsa,
    /// ECDSA P-256, `ENCRYPTED PRIVATE KEY` (passphrase `secret`).
    EncryptedPkcs8,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// When a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096 (rcgen's default).
    Current,
    /// The year 2000 only.
    Expired,
}

/// A test CA and the files it signs.
pub struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish()
    }
}

impl Pki {
    /// A new CA named `name`, its certificate written to `ca.pem`.
    ///
    /// # Panics
    ///
    /// If a key or certificate cannot be made or written.
    pub fn new(name: &str) -> Self {
        let dir = crate::broker::make_temp_dir();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let ca_file = dir.join("ca.pem");
        fs::write(&ca_file, ca.pem()).expect("write ca.pem");
        Self { dir, ca, ca_file }
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server certificate for `names` (DNS names or IP addresses), written to
    /// `{file}.crt` and `{file}.key`.
    ///
    /// # Panics
    ///
    /// As [`Pki::new`].
    pub fn server(&self, file: &str, names: &[&str], validity: Validity) -> CertFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("server params");
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        self.issue(file, &params, KeyFormat::Pkcs8)
    }

    /// A client certificate with common name `name`, its key in `format`.
    ///
    /// # Panics
    ///
    /// As [`Pki::new`], or if `openssl` fails.
    pub fn client(&self, name: &str, format: KeyFormat) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, &params, format)
    }

    /// Writes `contents` to `name` in the directory.
    ///
    /// # Panics
    ///
    /// If it cannot be written.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, contents).expect("write a PKI file");
        path
    }

    fn issue(&self, file: &str, params: &CertificateParams, format: KeyFormat) -> CertFiles {
        let key = match format {
            KeyFormat::Pkcs1Rsa => {
                let pkcs1 = self.dir.join(format!("{file}.rsa.pem"));
                openssl(&["genrsa", "-traditional", "-out", path_str(&pkcs1), "2048"]);
                let pkcs8 = openssl_out(&["pkcs8", "-topk8", "-nocrypt", "-in", path_str(&pkcs1)]);
                KeyPair::from_pem_and_sign_algo(&pkcs8, &rcgen::PKCS_RSA_SHA256)
                    .expect("load the RSA key")
            }
            _ => KeyPair::generate().expect("key"),
        };
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let cert_file = self.write(&format!("{file}.crt"), cert.pem());
        let key_file = self.dir.join(format!("{file}.key"));
        let pkcs8_file = self.write(&format!("{file}.p8.pem"), key.serialize_pem());
        match format {
            KeyFormat::Pkcs8 => {
                fs::rename(&pkcs8_file, &key_file).expect("rename the key");
            }
            KeyFormat::Sec1 => {
                let sec1 = openssl_out(&["ec", "-in", path_str(&pkcs8_file)]);
                assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "{sec1}");
                fs::write(&key_file, sec1).expect("write the key");
            }
            KeyFormat::Pkcs1Rsa => {
                fs::rename(self.dir.join(format!("{file}.rsa.pem")), &key_file)
                    .expect("rename the key");
                let pkcs1 = fs::read_to_string(&key_file).expect("read the key");
                assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"), "{pkcs1}");
            }
            KeyFormat::EncryptedPkcs8 => {
                let encrypted = openssl_out(&[
                    "pkcs8",
                    "-topk8",
                    "-v2",
                    "aes-256-cbc",
                    "-passout",
                    "pass:secret",
                    "-in",
                    path_str(&pkcs8_file),
                ]);
                assert!(
                    encrypted.contains("BEGIN ENCRYPTED PRIVATE KEY"),
                    "{encrypted}"
                );
                fs::write(&key_file, encrypted).expect("write the key");
            }
        }
        CertFiles {
            cert: cert_file,
            key: key_file,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

fn openssl(args: &[&str]) {
    let _ = openssl_out(args);
}

fn openssl_out(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PEM is ASCII")
}
