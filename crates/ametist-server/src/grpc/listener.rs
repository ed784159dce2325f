//! The gRPC listener's bounds, as the REST listener has them (`http.rs`): at most
//! `server.max_connections` connections are served at once (more wait in the kernel's
//! accept queue until one closes), and a connection must send its first bytes (HTTP/2's
//! preface) within `server.header_read_timeout` of being accepted.
//!
//! Without them a client that opens connections and sends nothing held a descriptor and a
//! task each, without end: tonic's server accepts every connection, and HTTP/2's keep-alive
//! pings only start once the preface has arrived. A connection that has sent its preface
//! and then stays idle is a client's channel kept open on purpose (gRPC clients do that),
//! so it keeps its slot; the keep-alive pings close it once the peer stops answering them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The connections accepted from `listener`, at most `max_connections` open at once, each
/// closed if its first bytes do not arrive within `first_bytes_within`. Accepting stops when
/// the returned stream is dropped (the server stopped).
pub fn incoming(
    listener: TcpListener,
    max_connections: usize,
    first_bytes_within: Duration,
) -> ReceiverStream<io::Result<Bounded>> {
    let (tx, rx) = mpsc::channel(1);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            // A slot first, then the connection: beyond the limit, clients wait to be accepted.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
                () = tx.closed() => return,
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Out of descriptors, or a connection reset before it was accepted:
                        // not fatal. A pause lets descriptors free up instead of spinning.
                        tracing::warn!(error = %e, "accepting a gRPC connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = stream.set_nodelay(true);
            let conn =
                Bounded { stream, _slot: slot, deadline: Some(Box::pin(tokio::time::sleep(first_bytes_within))) };
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// An accepted connection holding one of the listener's slots until it is dropped.
pub struct Bounded {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Until the first bytes arrive: when the connection is closed if they do not.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl AsyncRead for Bounded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.deadline = None;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no bytes arrived within server.header_read_timeout of the connection opening",
                ))),
                _ => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Bounded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl Connected for Bounded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}
