//! The administrator's HTTP listener (`admin_listen`): `GET /metrics` in Prometheus text
//! format ([`crate::metrics`]) and `GET /health` for load balancers and systemd watchers.
//!
//! Plain HTTP/1.1, one request per connection, nothing else: [`route`] reads a request's
//! first line (a pure function, tested on its own) and [`serve`] is the shell that reads at
//! most [`MAX_HEAD`] bytes of a request within [`READ_TIMEOUT`], answers and closes, holding
//! at most [`MAX_CONNECTIONS`] connections at once. Bind it to loopback or a management
//! network: it tells anyone who asks how busy the relay is.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::debug;

/// Longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen queue.
pub const MAX_CONNECTIONS: usize = 16;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// The route of a request from its first line (`GET /metrics HTTP/1.1`). `HEAD` is a `GET`
/// without the body.
pub fn route(request_line: &str) -> Route {
    let mut words = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    if method != "GET" && method != "HEAD" {
        return Route::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or_default();
    match path {
        "/metrics" => Route::Metrics,
        "/health" | "/healthz" => Route::Health,
        _ => Route::NotFound,
    }
}

/// What the listener reports, from the running relay.
pub trait Figures: Send + Sync + 'static {
    /// The metrics, as Prometheus text.
    fn metrics(&self) -> String;
    /// `Ok` with a line of words while the relay serves; `Err` with why not.
    fn health(&self) -> Result<String, String>;
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    figures: Arc<dyn Figures>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "admin listener accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let figures = figures.clone();
        tokio::spawn(async move {
            answer(stream, peer, &*figures).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, peer: SocketAddr, figures: &dyn Figures) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        debug!(%peer, "admin request not read");
        return;
    }
    let line = head
        .split(|&b| b == b'\n')
        .next()
        .map(|l| String::from_utf8_lossy(l).trim_end().to_string())
        .unwrap_or_default();
    let with_body = !line.starts_with("HEAD ");
    let (status, body) = match route(&line) {
        Route::Metrics => ("200 OK", figures.metrics()),
        Route::Health => match figures.health() {
            Ok(words) => ("200 OK", format!("{words}\n")),
            Err(why) => ("503 Service Unavailable", format!("{why}\n")),
        },
        Route::NotFound => ("404 Not Found", "GET /metrics or /health\n".to_string()),
        Route::MethodNotAllowed => ("405 Method Not Allowed", "GET only\n".to_string()),
        Route::BadRequest => ("400 Bad Request", "not an HTTP/1 request\n".to_string()),
    };
    let content_type = if route(&line) == Route::Metrics {
        "text/plain; version=0.0.4; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        response.extend_from_slice(body.as_bytes());
    }
    let written = tokio::time::timeout(READ_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        debug!(%peer, "admin answer not delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_find_metrics_and_health_and_nothing_else() {
        assert_eq!(route("GET /metrics HTTP/1.1"), Route::Metrics);
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0"), Route::Metrics);
        assert_eq!(route("HEAD /health HTTP/1.1"), Route::Health);
        assert_eq!(route("GET /healthz HTTP/1.1"), Route::Health);
        assert_eq!(route("GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route("GET /../etc/passwd HTTP/1.1"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(route("GET /metrics"), Route::BadRequest);
        assert_eq!(route("GET /metrics SPDY/3"), Route::BadRequest);
        assert_eq!(route("GET  /metrics HTTP/1.1"), Route::BadRequest);
        assert_eq!(route(""), Route::BadRequest);
    }
}
