//! A minimal HTTP/1.1 endpoint for the source's metrics: `GET /metrics` (the
//! Prometheus text format) and `GET /health` (200 while every connection is
//! up, 503 otherwise, with a JSON body). One request per connection.

use std::net::SocketAddr;
use std::time::Duration;

use mqtt_source::SourceHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::exit::Failure;

/// Binds `addr` (before connecting, so a bad address fails at once).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, Failure> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::usage(format!("--metrics-addr {addr}: {e}")))
}

/// Serves the metrics of `source` on `listener` until the process ends.
pub(crate) fn serve(listener: TcpListener, source: SourceHandle) {
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(event = "metrics.accept_failed", %error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let source = source.clone();
            tokio::spawn(async move {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), answer(stream, &source)).await;
            });
        }
    });
}

async fn answer(mut stream: TcpStream, source: &SourceHandle) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // The request head, at most 8 KiB.
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let head = String::from_utf8_lossy(&request);
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            source.metrics().prometheus(),
        ),
        ("GET", "/health") => {
            let health = source.health();
            let body = serde_json::json!({
                "healthy": health.is_healthy(),
                "connections": health.connections,
                "connected": health.connected,
                "closed": health.closed,
            })
            .to_string();
            let status = if health.is_healthy() {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "application/json", body)
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: /metrics or /health\n".into(),
        ),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
