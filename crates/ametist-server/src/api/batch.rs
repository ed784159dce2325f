//! `POST /collections/{name}/points/batch`: Qdrant's `batch_update_points`, a list of
//! point operations applied in order.
//!
//! Every operation is parsed, checked and prepared first (its shape, shard key, strict
//! mode, vectors against the collection's fields, names, filters, and whether the points it
//! changes by id will exist), so bad input in any of them is a 400 (or 404) naming it and
//! nothing is applied. Then they are applied one after the other, each exactly as its own
//! route applies it (same routing, same durability: with `wait`, each is in its partitions'
//! logs and fsynced before the next is sent; without, each is in their mailboxes, which
//! keep the order). What can only fail while a write is applied (a point deleted meanwhile
//! by another client, an overloaded or read-only partition) stops the batch at that
//! operation: the ones before it stay applied, as in Qdrant, and the error names it.

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use serde::Deserialize;
use serde_json::Value;

use ametist_core::PointId;
use ametist_engine::collection::{Collection, Existence, PreparedWrite};

use super::envelope::{parse_body, wait_param, Answer, ApiError, ApiResult};
use super::payload::{DeletePayload, PointsSelector, SetPayload};
use super::points::{collection, update_result, DeletePoints, DeleteVectorsRequest, UpdateVectors, UpsertPoints};
use super::AppState;

/// Qdrant's `UpdateOperations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOperations {
    pub operations: Vec<Value>,
}

/// One of Qdrant's `UpdateOperation`s: an object with exactly one of these keys (gRPC's
/// `PointsUpdateOperation` becomes one too).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Operation {
    Upsert(UpsertPoints),
    Delete(DeletePoints),
    SetPayload(SetPayload),
    OverwritePayload(SetPayload),
    DeletePayload(DeletePayload),
    ClearPayload(PointsSelector),
    UpdateVectors(UpdateVectors),
    DeleteVectors(DeleteVectorsRequest),
}

impl Operation {
    /// The operation's key in REST's JSON, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Operation::Upsert(_) => "upsert",
            Operation::Delete(_) => "delete",
            Operation::SetPayload(_) => "set_payload",
            Operation::OverwritePayload(_) => "overwrite_payload",
            Operation::DeletePayload(_) => "delete_payload",
            Operation::ClearPayload(_) => "clear_payload",
            Operation::UpdateVectors(_) => "update_vectors",
            Operation::DeleteVectors(_) => "delete_vectors",
        }
    }
}

const KINDS: &str =
    "upsert, delete, set_payload, overwrite_payload, delete_payload, clear_payload, update_vectors or delete_vectors";

/// The name of an operation's kind, for messages.
fn kind_of(v: &Value) -> String {
    match v.as_object().map(|m| m.keys().collect::<Vec<_>>()) {
        Some(keys) if keys.len() == 1 => keys[0].clone(),
        _ => "?".into(),
    }
}

/// `e` with the operation it belongs to named.
fn at(mut e: ApiError, i: usize, kind: &str) -> ApiError {
    e.message = format!("{} (operation #{i}, `{kind}`; nothing of the batch was applied)", e.message);
    e
}

pub async fn update(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Value> {
    let started = Instant::now();
    let wait = wait_param(query.as_deref(), started)?;
    let c = collection(&state, &name, started)?;
    let req: UpdateOperations = parse_body(&body, started)?;
    check_count(&state, req.operations.len(), started)?;
    let operations = req
        .operations
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let kind = kind_of(&v);
            serde_json::from_value(v).map_err(|e| {
                let e = ApiError::bad_request(
                    format!("Format error in JSON body: {e} (an operation is one of {KINDS})"),
                    started,
                );
                at(e, i, &kind)
            })
        })
        .collect::<Result<Vec<Operation>, ApiError>>()?;
    batch_update_points(&state, &c, operations, wait, started).await
}

/// A batch has at least one operation and at most `limits.max_batch`.
pub(crate) fn check_count(state: &AppState, n: usize, started: Instant) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::bad_request("Wrong input: `operations` is empty", started));
    }
    let max = state.config.limits.max_batch;
    if n > max {
        return Err(ApiError::bad_request(
            format!("Wrong input: {n} operations in one request, more than limits.max_batch ({max})"),
            started,
        ));
    }
    Ok(())
}

/// The operations of a batch (REST and gRPC `UpdateBatch`): every one prepared and
/// checked, then applied in order; a list of `UpdateResult`s, one per operation.
pub(crate) async fn batch_update_points(
    state: &AppState,
    c: &Collection,
    operations: Vec<Operation>,
    wait: bool,
    started: Instant,
) -> ApiResult<Value> {
    check_count(state, operations.len(), started)?;
    let mut prepared: Vec<(String, Collection, PreparedWrite)> = Vec::with_capacity(operations.len());
    for (i, op) in operations.into_iter().enumerate() {
        let kind = op.kind().to_string();
        let (scoped, w) = match op {
            Operation::Upsert(r) => super::points::prepare_upsert(c, r, started).await,
            Operation::Delete(r) => super::points::prepare_delete(c, r, started),
            Operation::SetPayload(r) => super::payload::prepare_set(c, r, false, started),
            Operation::OverwritePayload(r) => super::payload::prepare_set(c, r, true, started),
            Operation::DeletePayload(r) => super::payload::prepare_delete_keys(c, r, started),
            Operation::ClearPayload(r) => super::payload::prepare_clear(c, r, started),
            Operation::UpdateVectors(r) => super::points::prepare_update_vectors(c, r, started),
            Operation::DeleteVectors(r) => super::points::prepare_delete_vectors(c, r, started),
        }
        .map_err(|e| at(e, i, &kind))?;
        prepared.push((kind, scoped, w));
    }
    check_existence(&prepared, started).await?;
    let mut results = Vec::with_capacity(prepared.len());
    for (i, (kind, scoped, w)) in prepared.into_iter().enumerate() {
        let ack = scoped.apply(w, wait).await.map_err(|e| {
            let mut e = ApiError::from_engine(e, started);
            e.message = format!(
                "{} (operation #{i}, `{kind}`; the {i} operations before it were applied, it and the ones after it were not)",
                e.message
            );
            e
        })?;
        results.push(update_result(ack));
    }
    Ok(Answer::new(Value::Array(results), started))
}

/// Refuses, before anything is applied, an operation that changes by id a point that will
/// not exist when it comes: one that neither exists now nor is upserted by an earlier
/// operation of the batch, or that an earlier operation deletes by id. After a delete by
/// filter the batch cannot know which points are left, so later operations are checked
/// only when they run (and the batch stops there if a point is missing). Points are told
/// apart by id and shard-key scope.
async fn check_existence(prepared: &[(String, Collection, PreparedWrite)], started: Instant) -> Result<(), ApiError> {
    let scope_of = |c: &Collection| format!("{:?}", c.scope());
    // (scope, id) → exists after the operations so far.
    let mut known: HashMap<(String, PointId), bool> = HashMap::new();
    // Per operation, the points it needs that no earlier operation decides: asked for at once.
    let mut ask: Vec<(usize, Vec<PointId>)> = Vec::new();
    for (i, (_, c, w)) in prepared.iter().enumerate() {
        let scope = scope_of(c);
        let mut open = Vec::new();
        for id in w.must_exist() {
            match known.get(&(scope.clone(), id.clone())) {
                Some(true) => {}
                Some(false) => {
                    let e = ApiError::from_engine(ametist_engine::EngineError::PointNotFound(id.clone()), started);
                    return Err(at(e, i, &prepared[i].0));
                }
                None => open.push(id.clone()),
            }
        }
        if !open.is_empty() {
            ask.push((i, open));
        }
        match w.effect() {
            Existence::Creates(ids) => known.extend(ids.iter().map(|id| ((scope.clone(), id.clone()), true))),
            Existence::Deletes(ids) => known.extend(ids.iter().map(|id| ((scope.clone(), id.clone()), false))),
            Existence::Keeps => {}
            Existence::Unknown => break,
        }
    }
    for (i, ids) in ask {
        let (kind, c, _) = &prepared[i];
        c.require_points(&ids).await.map_err(|e| at(ApiError::from_engine(e, started), i, kind))?;
    }
    Ok(())
}
