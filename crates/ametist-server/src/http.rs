//! The HTTP listener: how many connections are served at once, and how long a client may
//! take to send a request.
//!
//! A client that opens connections and sends nothing, or sends a request a byte at a time,
//! holds a file descriptor and a task per connection. Without bounds, about a thousand such
//! connections exhausted the process's descriptors and `/healthz` stopped answering. Here:
//!
//! * at most `server.max_connections` connections are served; beyond that, new ones wait in
//!   the kernel's accept queue until one closes (they are not refused, so a burst of honest
//!   clients is served late rather than failed);
//! * a request's head must arrive within `server.header_read_timeout`, counted from when
//!   the connection is ready for it: right after it opens, and after each response on a
//!   kept-alive connection, so an idle keep-alive connection is closed after that time too;
//! * a request's body must arrive within `server.body_read_timeout` of its head: a slower
//!   body ends the request with a 408 in Qdrant's JSON envelope (see [`body_deadline`]).
//!
//! Only HTTP/1.1 is served on the REST port: every Qdrant REST client speaks it, and it
//! avoids the protocol detection during which HTTP/2-capable servers apply no timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The listener's bounds (the `server` section of `ametist.yaml`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long connections still open at shutdown may take to finish their request.
    pub shutdown_grace: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets the
/// open connections finish the request they are on (up to `shutdown_grace`) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // A slot first, then the connection: beyond the limit, clients wait to be accepted.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection reset before it was
                    // accepted: not fatal. A pause lets descriptors free up instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away mid-request, or a timed-out header, ends the connection
            // with an error that concerns only that client.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(grace = ?limits.shutdown_grace, "connections still open at shutdown were closed");
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, so that `server.max_connections`
/// plus the partitions' files fit; returns the limit in force.
pub fn raise_open_files_limit() -> Option<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
        Some(lim.rlim_cur)
    }
}

/// Middleware: the request's body must arrive within `timeout` of its head. A body still
/// arriving then fails the read; the handler's error is replaced by a 408 naming the limit.
/// Snapshot uploads may be far larger than any other body: for them `timeout` bounds the
/// wait for each next chunk instead of the whole body.
pub async fn body_deadline(timeout: Duration, req: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let per_chunk = req.uri().path().ends_with("/snapshots/upload");
    let req = req.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout: per_chunk.then_some(timeout),
            expired: expired.clone(),
        })
    });
    let response = next.run(req).await;
    if expired.load(Ordering::Acquire) {
        return crate::api::envelope::ApiError {
            status: axum::http::StatusCode::REQUEST_TIMEOUT,
            message: format!(
                "Request timeout: the request body did not arrive within server.body_read_timeout ({timeout:?})"
            ),
            started: std::time::Instant::now(),
        }
        .into_response();
    }
    response
}

/// A request body that fails once its deadline passes.
struct DeadlineBody {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// `Some`: the deadline moves this far past each chunk that arrives.
    timeout: Option<Duration>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if let Some(timeout) = self.timeout {
                self.sleep.as_mut().reset(tokio::time::Instant::now() + timeout);
            }
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(axum::Error::new("the request body did not arrive in time"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
