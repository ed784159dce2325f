//! The client side of the node-to-node protocol: one lazily connected gRPC channel per
//! peer address, the cluster secret on every call, and a deadline on every call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::wire::grpc::node_client::NodeClient;
use crate::wire::Envelope;

/// The metadata key that carries the cluster secret.
pub const SECRET_HEADER: &str = "x-ametist-secret";

/// How long connecting to a peer may take before the call fails as unreachable. A peer
/// whose process is gone refuses at once; this bounds a peer whose machine is gone.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

pub struct Transport {
    secret: String,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Transport {
    pub fn new(secret: impl Into<String>) -> Self {
        Transport { secret: secret.into(), channels: Mutex::new(HashMap::new()) }
    }

    /// One call to the peer at `addr` (`host:port`), failing after `timeout` (sent to the
    /// peer as `grpc-timeout`, so it stops working for a caller that gave up).
    pub async fn call(&self, addr: &str, env: Envelope, timeout: Duration) -> Result<Envelope, tonic::Status> {
        let channel = self.channel(addr)?;
        let mut req = tonic::Request::new(env);
        req.set_timeout(timeout);
        let secret = MetadataValue::try_from(self.secret.as_str())
            .map_err(|_| tonic::Status::invalid_argument("the cluster secret must be printable ASCII"))?;
        req.metadata_mut().insert(SECRET_HEADER, secret);
        let mut client = NodeClient::new(channel).max_decoding_message_size(usize::MAX);
        // The deadline also bounds a peer that accepted the connection but never answers.
        match tokio::time::timeout(timeout, client.call(req)).await {
            Ok(r) => r.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!("no answer from {addr} within {timeout:?}"))),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().expect("the channel map lock is never held across a panic");
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("bad peer address {addr}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        // Lazy: a peer that is down now is reconnected to on a later call.
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Compares secrets in time independent of where they differ and of their lengths: both
/// are hashed (SHA-256) and the digests compared byte by byte without an early exit, so
/// neither the position of the first difference nor the expected length shows in the time.
pub fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
