//! Qdrant's `consistency` parameter on reads: how many copies of each partition the answer
//! must reflect (a number, `majority`, `quorum` or `all`).
//!
//! Every in-sync copy of a partition holds every acknowledged write (a write is
//! acknowledged only once each in-sync copy has it, see `ametist-cluster`'s replicator), so
//! a read from one in-sync copy already reflects as much as a read from all of them. What
//! the parameter adds is the requirement: a read asking for N copies answers 503, naming
//! the partition, when fewer than N copies of some partition are in sync now, and asking
//! for more copies than the collection keeps is a 400.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::envelope::ApiError;
use super::AppState;

/// Checks `consistency` on any route under `/collections/{name}/` before the handler runs.
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let Some(wanted) =
        req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("consistency=").map(str::to_string)))
    else {
        return next.run(req).await;
    };
    let Some(name) = req.uri().path().strip_prefix("/collections/").and_then(|rest| rest.split('/').next()) else {
        return next.run(req).await;
    };
    match require(&state, name, &wanted, started) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Checks that a read of collection `name` asking for `wanted` copies (a number,
/// `majority`, `quorum` or `all`) can be served now. REST's `consistency` parameter and
/// gRPC's `read_consistency` both come here. An unknown collection passes: the handler
/// answers 404 naming it.
pub fn require(state: &AppState, name: &str, wanted: &str, started: Instant) -> Result<(), ApiError> {
    let Ok(collection) = state.db.collection(name) else {
        return Ok(());
    };
    let factor = collection.spec().replication.factor;
    let needed = match wanted {
        "majority" | "quorum" => factor / 2 + 1,
        "all" => factor,
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 && n <= factor => n,
            Ok(n) if n >= 1 => {
                let msg = format!("Wrong input: consistency {n} exceeds the collection's replication_factor {factor}");
                return Err(ApiError::bad_request(msg, started));
            }
            _ => {
                let msg = format!(
                    "Wrong input: consistency must be a number of copies (at least 1), `majority`, `quorum` or `all`, not `{n}`"
                );
                return Err(ApiError::bad_request(msg, started));
            }
        },
    };
    if needed > 1 {
        let in_sync = state.cluster.as_ref().and_then(|c| c.in_sync_counts(name)).unwrap_or_default();
        if let Some((p, &have)) = in_sync.iter().enumerate().find(|(_, &have)| have < needed) {
            let msg = format!(
                "Service unavailable: partition {p} has {have} in-sync cop{} now, fewer than consistency {wanted} \
                 needs ({needed}); retry later",
                if have == 1 { "y" } else { "ies" }
            );
            return Err(ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: msg, started });
        }
    }
    Ok(())
}
