//! Concurrent read-only requests inside a partition.
//!
//! A partition actor applies writes one group at a time on its own thread. Searches only
//! read, and on a machine with several cores one partition answering one search at a time
//! would leave cores idle under concurrent queries. So a running actor publishes its
//! state behind a reader-writer lock ([`ReadSide`]): read-only messages (search, get,
//! scroll, count, text statistics and search, stats) run on a small process-wide pool of
//! search threads, several at once, under the read lock; the actor's own thread takes the
//! write lock for each group of writes it applies.
//!
//! Rules that keep this as safe as the single-threaded actor:
//!
//! * Only the actor thread writes, and only while it holds the write lock, so a read sees a
//!   group of writes entirely or not at all.
//! * A read never waits for a lock on a pool thread: when the actor holds (or waits for)
//!   the write lock, the read is put into the actor's mailbox and the actor answers it
//!   after the write. A stalled or busy partition therefore never ties up the pool that
//!   other partitions share.
//! * A read sent while writes (or other messages that change the state) wait in the mailbox
//!   goes through the mailbox too, so that it is answered after them, as it always was.
//! * While the actor recovers (or after it failed), nothing is published and reads queue
//!   in the mailbox as before; the reads in the pool are bounded per partition by the
//!   mailbox capacity, beyond which they also go through the (bounded) mailbox.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, OnceLock, RwLock, TryLockError};

use tokio::sync::mpsc;

use crate::error::EngineError;
use crate::messages::PartitionMsg;

/// What a running actor exposes to read-only requests: its state, while it runs.
pub(crate) struct ReadSide<S> {
    current: Mutex<Option<Arc<RwLock<S>>>>,
    in_flight: Arc<AtomicUsize>,
    /// Messages other than reads sent to the mailbox and not yet taken by the actor under
    /// its write lock. While there are any, reads go through the mailbox behind them.
    writes_queued: AtomicUsize,
    limit: usize,
    partition: usize,
}

/// Something that can answer read-only partition messages from a shared reference.
pub(crate) trait ReadOnly: Send + Sync + 'static {
    /// Answers `msg`, which [`PartitionMsg::is_read_only`] accepted.
    fn read(&self, msg: PartitionMsg);
}

impl<S: ReadOnly> ReadSide<S> {
    pub(crate) fn new(partition: usize, limit: usize) -> Self {
        ReadSide {
            current: Mutex::new(None),
            in_flight: Arc::new(AtomicUsize::new(0)),
            writes_queued: AtomicUsize::new(0),
            limit: limit.max(1),
            partition,
        }
    }

    /// Makes `state` the one reads use until the returned guard is dropped (when the actor
    /// run ends, by returning or by unwinding from a panic).
    pub(crate) fn publish(self: &Arc<Self>, state: Arc<RwLock<S>>) -> Published<S> {
        *self.current.lock().expect("the read-side lock is never held across a panic") = Some(state);
        Published { side: self.clone() }
    }

    /// Counts a message other than a read that is about to be put into the mailbox.
    pub(crate) fn write_sent(&self) {
        self.writes_queued.fetch_add(1, Ordering::AcqRel);
    }

    /// The actor took a message counted by [`ReadSide::write_sent`] out of the mailbox,
    /// holding its write lock.
    pub(crate) fn write_taken(&self) {
        // Saturating: a message put into the mailbox without a permit (shutdown) is not
        // counted.
        let _ = self.writes_queued.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Runs a read-only message on the search pool, or hands it back when it must go
    /// through the mailbox instead (nothing published, too many reads in flight, or
    /// writes queued before it). A read given to the pool comes with a [`Handed`], through
    /// which the caller may still run it itself while no search thread has started it.
    /// With `here`, runs it on the calling thread instead (the caller has made sure it may
    /// block).
    // The message comes back by value so that the caller can put it into the mailbox;
    // boxing it would cost an allocation on every read.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_dispatch(
        &self,
        msg: PartitionMsg,
        mailbox: &mpsc::Sender<PartitionMsg>,
        here: bool,
    ) -> Result<Option<Handed>, PartitionMsg> {
        if self.writes_queued.load(Ordering::Acquire) > 0 {
            return Err(msg);
        }
        let Some(state) = self.current.lock().expect("the read-side lock is never held across a panic").clone() else {
            return Err(msg);
        };
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(msg);
        }
        let ticket = ReadTicket(self.in_flight.clone());
        let mailbox = mailbox.clone();
        let partition = self.partition;
        let job = move || {
            let _ticket = ticket;
            let guard = match state.try_read() {
                Ok(guard) => guard,
                Err(TryLockError::WouldBlock) => {
                    // The actor is writing: it answers this read after the write.
                    if let Err(e) = mailbox.try_send(msg) {
                        let (msg, err) = match e {
                            mpsc::error::TrySendError::Full(m) => (
                                m,
                                EngineError::Overloaded(format!(
                                    "partition {partition} is busy writing and its mailbox is full"
                                )),
                            ),
                            mpsc::error::TrySendError::Closed(m) => {
                                (m, EngineError::PartitionUnavailable { partition, reason: "stopped".into() })
                            }
                        };
                        msg.fail(err);
                    }
                    return;
                }
                // The actor panicked while writing; its reply channels drop, callers see
                // the partition as unavailable while the supervisor rebuilds it.
                Err(TryLockError::Poisoned(_)) => return,
            };
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| guard.read(msg))) {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(partition, panic = %what, "a read-only request panicked; its caller sees the partition as unavailable");
            }
        };
        if here {
            job();
            return Ok(None);
        }
        let (for_pool, handed) = Handed::split(Box::new(job));
        pool().execute(for_pool);
        Ok(Some(handed))
    }
}

/// A read given to the search pool, which its sender may still run itself.
///
/// Under concurrent queries every core is busy with a caller, so the pool's threads get a
/// core only by taking it from a caller that then waits idle for them; each such hand-off
/// costs more than a partition's search on a virtual machine. A caller that has answered its
/// own partition therefore takes back the reads the pool has not started, and on an idle
/// machine finds them already running.
pub(crate) struct Handed(Arc<Mutex<Option<Job>>>);

impl Handed {
    /// The job the pool runs, which runs `job` unless the sender took it back first, and
    /// the sender's handle on it.
    fn split(job: Job) -> (Job, Handed) {
        let slot = Arc::new(Mutex::new(Some(job)));
        let shared = slot.clone();
        let for_pool = Box::new(move || {
            // Taken under the lock, run outside it: whoever takes the job first runs it.
            let job = shared.lock().expect("no job runs while its slot is locked").take();
            if let Some(job) = job {
                job();
            }
        });
        (for_pool, Handed(slot))
    }

    /// Takes the read back if no search thread has started it: `None` when it has (its
    /// answer comes through its reply channel as usual).
    pub(crate) fn take_back(&self) -> Option<impl FnOnce()> {
        self.0.lock().expect("no job runs while its slot is locked").take()
    }
}

/// Clears the published state when an actor run ends.
pub(crate) struct Published<S> {
    side: Arc<ReadSide<S>>,
}

impl<S> Drop for Published<S> {
    fn drop(&mut self) {
        // A panic elsewhere cannot poison this lock: it is only held to swap an Arc.
        if let Ok(mut current) = self.side.current.lock() {
            *current = None;
        }
    }
}

/// Counts a read in flight until its job ends, however it ends.
struct ReadTicket(Arc<AtomicUsize>);

impl Drop for ReadTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The process-wide pool of search threads, one per core.
struct Pool {
    tx: std_mpsc::Sender<Job>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let (tx, rx) = std_mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("search-{i}"))
                .spawn(move || loop {
                    // Waiting for a job holds the lock; the next idle thread queues on it.
                    let queue = rx.lock().expect("no job runs while the queue lock is held");
                    let Some(job) = poll_then_recv(&queue) else { return };
                    drop(queue);
                    job();
                })
                .expect("spawning a search thread only fails when the OS is out of threads");
        }
        Pool { tx }
    })
}

/// How long the idle search thread that holds the queue polls for the next job before it
/// sleeps. A query over several partitions hands all but one of them to this pool, and
/// waking a sleeping thread costs tens of microseconds on a virtual machine, as much as a
/// partition's whole search; a client that just got an answer usually asks again sooner.
pub(crate) const POLL: std::time::Duration = std::time::Duration::from_micros(100);

/// Calls `attempt` until it settles (`Some`) or [`POLL`] has passed (`None`), yielding the
/// core to any other runnable thread between calls, so polling never delays work.
pub(crate) fn poll<T>(mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(settled) = attempt() {
            return Some(settled);
        }
        if start.elapsed() >= POLL {
            return None;
        }
        std::thread::yield_now();
    }
}

/// The next job: polled for, then waited for. `None` once the pool is gone.
fn poll_then_recv(queue: &std_mpsc::Receiver<Job>) -> Option<Job> {
    let polled = poll(|| match queue.try_recv() {
        Ok(job) => Some(Some(job)),
        Err(std_mpsc::TryRecvError::Disconnected) => Some(None),
        Err(std_mpsc::TryRecvError::Empty) => None,
    });
    polled.unwrap_or_else(|| queue.recv().ok())
}

impl Pool {
    fn execute(&self, job: Job) {
        self.tx.send(job).expect("search threads never exit while the pool exists");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counting_job(runs: &Arc<AtomicUsize>) -> Job {
        let runs = runs.clone();
        Box::new(move || {
            runs.fetch_add(1, Ordering::SeqCst);
        })
    }

    #[test]
    fn a_job_taken_back_does_not_run_on_the_pool() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (for_pool, handed) = Handed::split(counting_job(&runs));
        handed.take_back().expect("nothing started the job")();
        for_pool();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(handed.take_back().is_none());
    }

    #[test]
    fn a_job_the_pool_started_cannot_be_taken_back() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (for_pool, handed) = Handed::split(counting_job(&runs));
        for_pool();
        assert!(handed.take_back().is_none());
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn racing_takers_run_a_job_exactly_once() {
        for _ in 0..200 {
            let runs = Arc::new(AtomicUsize::new(0));
            let (for_pool, handed) = Handed::split(counting_job(&runs));
            let pool_side = std::thread::spawn(for_pool);
            if let Some(job) = handed.take_back() {
                job();
            }
            pool_side.join().expect("the job does not panic");
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    }
}
