//! `qdrant.Qdrant/HealthCheck`: the title and version, as REST's `GET /` answers them.
//! Clients call it to check compatibility, so it needs no API key (as in Qdrant).

use tonic::{Request, Response, Status};

use super::proto::{qdrant_server::Qdrant, HealthCheckReply, HealthCheckRequest};
use crate::api::QDRANT_COMPAT_VERSION;

pub struct HealthService;

#[tonic::async_trait]
impl Qdrant for HealthService {
    async fn health_check(&self, _: Request<HealthCheckRequest>) -> Result<Response<HealthCheckReply>, Status> {
        Ok(Response::new(HealthCheckReply {
            title: crate::api::TITLE.to_string(),
            version: QDRANT_COMPAT_VERSION.to_string(),
            commit: None,
        }))
    }
}
