//! Supervision of partition actors.
//!
//! Each partition runs on its own thread under a supervisor loop: the loop builds the
//! actor from its store (recovery), runs it until it stops or panics, and on a panic
//! applies the [`SupervisionPolicy`]: with `restart`, the actor is rebuilt from the store
//! and resumes on the same mailbox, so callers' handles stay valid; after `max-restarts`
//! failures within `within`, or at once with `stop`, the partition is stopped, its mailbox
//! is closed and the reason is published in its [`PartitionStatus`].
//!
//! The message being handled when the actor panicked is lost with its reply, so its caller
//! sees the failure (a search counts the partition as missing; a write reports an unknown
//! outcome and may be retried, since writes are idempotent).
//!
//! A partition whose storage fails (a full disk) does not panic and is not restarted: it
//! goes [`ActorState::ReadOnly`] by itself, answers reads, refuses writes and retries its
//! log (see `partition.rs`); it publishes why in [`PartitionStatus::storage_error`]. Such
//! failures are an environment the partition waits out, not crashes, so they never count
//! toward `max-restarts`.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::config::{RestartStrategy, SupervisionPolicy};

/// The lifecycle state of a partition actor, as published to observers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorState {
    /// Rebuilding state from the store; messages wait in the mailbox.
    Recovering,
    /// Taking messages.
    Running,
    /// Stopped for good: shut down, or failed past the restart policy.
    Stopped,
    /// Taking messages, but its storage cannot be written (a full disk): reads are answered
    /// from memory, writes are refused at once, and the log is retried with a backoff.
    #[serde(rename = "read_only")]
    ReadOnly,
}

/// Why a partition is [`ActorState::ReadOnly`], as the partitions route shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageErrorInfo {
    /// What failed, naming the file.
    pub reason: String,
    /// True when the storage is full (ENOSPC, a quota): freeing space brings writes back.
    pub disk_full: bool,
    /// How long ago the log failed, in milliseconds.
    pub since_ms: u64,
    /// Retries of the log so far.
    pub retries: u32,
    /// When the log is tried next, in milliseconds from now.
    pub next_retry_ms: u64,
}

/// What [`StorageErrorInfo`] is made from.
#[derive(Debug, Clone)]
pub(crate) struct StorageProblem {
    pub reason: String,
    pub disk_full: bool,
    pub since: Instant,
    pub retries: u32,
    pub next_retry: Instant,
}

/// What a supervisor publishes about its partition. Shared with the partition's handles.
#[derive(Debug)]
pub struct PartitionStatus {
    state: AtomicU8,
    restarts: AtomicU32,
    last_failure: Mutex<Option<String>>,
    stop_reason: Mutex<Option<String>>,
    storage: Mutex<Option<StorageProblem>>,
}

impl PartitionStatus {
    pub(crate) fn new() -> Self {
        PartitionStatus {
            state: AtomicU8::new(ActorState::Recovering as u8),
            restarts: AtomicU32::new(0),
            last_failure: Mutex::new(None),
            stop_reason: Mutex::new(None),
            storage: Mutex::new(None),
        }
    }

    pub fn state(&self) -> ActorState {
        match self.state.load(Ordering::Acquire) {
            0 => ActorState::Recovering,
            1 => ActorState::Running,
            2 => ActorState::Stopped,
            _ => ActorState::ReadOnly,
        }
    }

    /// Why the partition cannot write, while it is [`ActorState::ReadOnly`].
    pub fn storage_error(&self) -> Option<StorageErrorInfo> {
        let problem = self.storage.lock().expect("status lock is never held across a panic").clone()?;
        let now = Instant::now();
        Some(StorageErrorInfo {
            reason: problem.reason,
            disk_full: problem.disk_full,
            since_ms: now.saturating_duration_since(problem.since).as_millis() as u64,
            retries: problem.retries,
            next_retry_ms: problem.next_retry.saturating_duration_since(now).as_millis() as u64,
        })
    }

    /// Publishes that the partition is read-only (with why), or, with `None`, that it takes
    /// writes again.
    pub(crate) fn set_storage(&self, problem: Option<StorageProblem>) {
        let state = if problem.is_some() { ActorState::ReadOnly } else { ActorState::Running };
        *self.storage.lock().expect("status lock is never held across a panic") = problem;
        self.set_state(state);
    }

    /// How many times the actor was restarted after a failure.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Acquire)
    }

    /// The message of the most recent failure, if any.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().expect("status lock is never held across a panic").clone()
    }

    /// Why the partition stopped, once it has.
    pub fn stop_reason(&self) -> Option<String> {
        self.stop_reason.lock().expect("status lock is never held across a panic").clone()
    }

    pub(crate) fn set_state(&self, state: ActorState) {
        self.state.store(state as u8, Ordering::Release);
    }

    pub(crate) fn mark_stopped(&self, reason: String) {
        *self.stop_reason.lock().expect("status lock is never held across a panic") = Some(reason);
        *self.storage.lock().expect("status lock is never held across a panic") = None;
        self.set_state(ActorState::Stopped);
    }
}

/// How one actor run ended.
pub(crate) enum RunEnd {
    /// Asked to stop, or every handle is gone.
    Stopped,
}

/// Runs an actor under `policy` until it stops for good.
///
/// `start` builds a fresh actor (recovering its state) and may fail; `run` publishes the
/// actor's state ([`ActorState::Running`] or [`ActorState::ReadOnly`]) and drives it until
/// it returns or panics; `close` is called once when the partition stops for good, to
/// close and drain the mailbox so that queued callers get an answer instead of a hang.
pub(crate) fn supervise<A>(
    name: &str,
    policy: SupervisionPolicy,
    status: &PartitionStatus,
    mut start: impl FnMut() -> Result<A, String>,
    mut run: impl FnMut(A) -> RunEnd,
    close: impl FnOnce(),
) {
    let mut failures: VecDeque<Instant> = VecDeque::new();
    loop {
        *status.storage.lock().expect("status lock is never held across a panic") = None;
        status.set_state(ActorState::Recovering);
        let outcome = match catch_unwind(AssertUnwindSafe(&mut start)) {
            Ok(Ok(actor)) => catch_unwind(AssertUnwindSafe(|| run(actor))).map_err(panic_message),
            Ok(Err(e)) => Err(format!("recovery failed: {e}")),
            Err(panic) => Err(format!("recovery panicked: {}", panic_message(panic))),
        };
        let failure = match outcome {
            Ok(RunEnd::Stopped) => {
                status.mark_stopped("shut down".into());
                close();
                return;
            }
            Err(failure) => failure,
        };
        tracing::error!(partition = name, %failure, "partition actor failed");
        *status.last_failure.lock().expect("status lock is never held across a panic") = Some(failure.clone());

        let now = Instant::now();
        while failures.front().is_some_and(|t| now.duration_since(*t) > policy.within) {
            failures.pop_front();
        }
        failures.push_back(now);
        let give_up = match policy.strategy {
            RestartStrategy::Stop => Some("supervision strategy is `stop`".to_string()),
            RestartStrategy::Restart if failures.len() as u32 > policy.max_restarts => Some(format!(
                "failed {} times within {:?} (max-restarts {})",
                failures.len(),
                policy.within,
                policy.max_restarts
            )),
            RestartStrategy::Restart => None,
        };
        if let Some(why) = give_up {
            let reason = format!("stopped: {why}; last failure: {failure}");
            tracing::error!(partition = name, %reason, "partition stopped");
            status.mark_stopped(reason);
            close();
            return;
        }
        status.restarts.fetch_add(1, Ordering::AcqRel);
        tracing::warn!(partition = name, restarts = status.restarts(), "restarting partition actor");
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}
