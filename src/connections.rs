//! The accept loop: what `axum::serve` does, plus the limits it lacks, so that slow or idle
//! clients cannot take every socket the process may open:
//! - a new connection must start its request within the header deadline, and finish the head
//!   within it once started (hyper's own timer, which only starts at the first byte);
//! - a connection with no traffic either way for the idle deadline is closed (a kept-alive one
//!   between requests; websockets stay open through the server's pings);
//! - at most a set number of connections are served: beyond it a newcomer gets 503 at once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::{Service as _, ServiceExt as _};

use crate::metrics::Metrics;

#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long shutdown lets running requests finish before it drops their connections.
    pub drain: Duration,
}

/// Answer to a connection over the cap; the client can tell "busy" from "down".
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Serves `router` until `stop` resolves, then lets open connections finish (websockets are
/// closed by the router's own shutdown signal) for at most `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    // HTTP/2 websockets need the CONNECT protocol, as axum::serve enables it.
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let builder = Arc::new(builder);
    tokio::pin!(stop);
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors, say: wait for some to close rather than spin.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            tokio::spawn(turn_away(stream));
            continue;
        };
        let Ok(service) = make_service.call(address).await;
        let idle_timeout = limits.idle_timeout;
        let header_timeout = limits.header_timeout;
        let service =
            TowerToHyperService::new(service.map_request(|request: hyper::Request<Incoming>| request.map(Body::new)));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let open = metrics.connections_open.clone();
        open.inc();
        tokio::spawn(async move {
            // A client that connects and sends nothing never reaches hyper's header timer.
            if tokio::time::timeout(header_timeout, stream.readable()).await.is_ok() {
                let stream = TokioIo::new(IdleTimeout::new(stream, idle_timeout));
                let connection = builder.serve_connection_with_upgrades(stream, service);
                if let Err(err) = watcher.watch(connection).await {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
            }
            open.dec();
            drop(permit);
        });
    }
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(deadline_secs = limits.drain.as_secs(), "connections still open at the shutdown deadline");
    }
    Ok(())
}

/// Waits (briefly) for the request to start, since an HTTP client takes an answer sent before
/// its request for a broken connection, then answers 503 and closes.
async fn turn_away(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut head = [0_u8; 1024];
        let _started = stream.read(&mut head).await?;
        stream.write_all(OVER_CAPACITY).await
    })
    .await;
}

/// A socket that fails with `TimedOut` once nothing has been read or written for `limit`.
/// Each read and write only notes the time; the timer is moved when it fires, not on every call.
struct IdleTimeout<S> {
    inner: S,
    limit: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, limit: Duration) -> Self {
        let now = Instant::now();
        Self { inner, limit, last_activity: now, timer: Box::pin(tokio::time::sleep_until(now + limit)) }
    }

    /// Called when the inner socket is not ready: `Ready(TimedOut)` once the connection has
    /// been idle for the whole limit, else re-arms the timer for the rest of it.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last_activity + self.limit;
            if deadline <= Instant::now() {
                return Poll::Ready(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle"));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    fn active<T>(&mut self, polled: Poll<std::io::Result<T>>, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.last_activity = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.active(polled, cx)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.active(polled, cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.active(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
