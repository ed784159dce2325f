//! A layer of the gRPC server that files every call in the process's request statistics
//! (`metrics.rs`): `/telemetry`'s `requests.grpc`, `/metrics`' `ametist_grpc_*` series and
//! the dashboard's history, as REST's middleware does for routes.
//!
//! A call's status code is read from the response head: every call that fails, whether in
//! the API key check, while decoding or in the handler, is answered by tonic as a
//! "trailers-only" response whose head carries `grpc-status`. A head without it is a call
//! that answered a message (`Ok`). The time counted is until the head is ready, which for
//! these unary calls is when the answer is complete.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http::{Request, Response};
use tonic::codegen::Service;
use tonic::Code;

use crate::metrics::Metrics;

/// Wraps each service of the server in [`Metered`].
#[derive(Clone)]
pub struct MeteredLayer {
    pub metrics: Arc<Metrics>,
}

impl<S> tower_layer::Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered { inner, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<Request<B>> for Metered<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let rpc = req.uri().path().to_string();
        let metrics = self.metrics.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let answer = answer.await;
            let code = match &answer {
                Ok(resp) => resp.headers().get("grpc-status").map_or(Code::Ok, |v| Code::from_bytes(v.as_bytes())),
                // The transport failed the call before any status was formed.
                Err(_) => Code::Unknown,
            };
            metrics.record_grpc(&rpc, code, started.elapsed().as_secs_f64());
            answer
        })
    }
}
