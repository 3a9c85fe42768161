//! An HTTP CONNECT proxy for the tests, on 127.0.0.1 and an ephemeral port.
//!
//! `ConnectProxy::start` spawns it on the current tokio runtime. It answers
//! `CONNECT host:port` with 200 and relays bytes both ways; with
//! `ConnectProxy::start_with_auth` it wants `Proxy-Authorization` to equal the
//! value given (such as `Basic dXNlcjpwYXNz` for `user:pass`) and answers 407
//! otherwise. It records every tunnel it opened. Dropping it stops accepting.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test harness: a proxy that cannot bind is a test failure"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running CONNECT proxy.
#[derive(Debug)]
pub struct ConnectProxy {
    addr: SocketAddr,
    tunnels: Arc<Mutex<Vec<String>>>,
    refused: Arc<Mutex<u32>>,
    task: JoinHandle<()>,
}

impl ConnectProxy {
    /// A proxy that asks for no authentication.
    pub async fn start() -> Self {
        Self::spawn(None).await
    }

    /// A proxy that wants `Proxy-Authorization: {expected}`.
    pub async fn start_with_auth(expected: &str) -> Self {
        Self::spawn(Some(expected.to_owned())).await
    }

    async fn spawn(auth: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (t, r) = (tunnels.clone(), refused.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (t, r, auth) = (t.clone(), r.clone(), auth.clone());
                tokio::spawn(async move {
                    let _ = serve(client, auth.as_deref(), &t, &r).await;
                });
            }
        });
        Self {
            addr,
            tunnels,
            refused,
            task,
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The targets (`host:port`) of the tunnels opened so far.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }

    /// How many requests were answered 407.
    pub fn refused(&self) -> u32 {
        *self.refused.lock().unwrap()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut client: TcpStream,
    auth: Option<&str>,
    tunnels: &Mutex<Vec<String>>,
    refused: &Mutex<u32>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(client.read_u8().await?);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request = lines.next().unwrap_or_default();
    let target = match request.split(' ').collect::<Vec<_>>().as_slice() {
        ["CONNECT", target, version] if version.starts_with("HTTP/1.") => (*target).to_owned(),
        _ => {
            client
                .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    if let Some(expected) = auth {
        let given = lines.find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_owned())
        });
        if given.as_deref() != Some(expected) {
            *refused.lock().unwrap() += 1;
            client
                .write_all(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n\
                      Proxy-Authenticate: Basic realm=\"tests\"\r\n\r\n",
                )
                .await?;
            return Ok(());
        }
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
            .await?;
        return Ok(());
    };
    tunnels.lock().unwrap().push(target);
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await?;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}
