//! Threads of their own for CPU-bound work that must not run on an async worker: one per core
//! (or fewer, for jobs that use several cores each), below normal priority, fed through a
//! bounded queue. The password hashes ([`crate::passwords`]) and the judging of narrowed tokens
//! ([`crate::tokens`]) run on two such pools.
//!
//! Why not tokio's blocking pool: a job there finishes a moment before its thread is idle
//! again, so the next job often starts a new thread, and each new thread took an allocator
//! arena (and, for argon2, 7 MiB) of its own that stayed: a flood grew the process by tens to
//! hundreds of MiB (BENCHMARKS.md, memory). A bounded queue makes a flood wait for room instead.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use thread_priority::ThreadPriority;

type Job = Box<dyn FnOnce() + Send>;

/// How far below normal the workers run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Priority {
    /// The lowest there is: on Linux the `SCHED_IDLE` policy, which any waking request
    /// pre-empts; elsewhere the lowest nice value.
    Idle,
    /// thread-priority's cross-platform value, 0–99 (on Linux it maps onto niceness: 23 is
    /// nice 9).
    Lowered(u8),
}

/// What a worker does after `after` without a job (once, then it waits as long as it takes):
/// let go of what it kept for the next job.
pub(crate) struct WhenIdle {
    pub after: Duration,
    pub run: Arc<dyn Fn() + Send + Sync>,
}

/// The job was not done: the workers have stopped, or the job panicked (which loses its own
/// answer, not the worker).
#[derive(Debug)]
pub(crate) struct NotDone;

pub(crate) struct Workers {
    queue: flume::Sender<Job>,
}

/// The cores this process may run on (2 when the system cannot tell). Each call reads the
/// cgroup's files (`available_parallelism`): count once, at start, not per request.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl Workers {
    /// Starts `threads` threads (at least one), named `name-0`, `name-1`, …; up to
    /// `queue_per_worker` jobs per thread wait in the queue before a caller waits for room. The
    /// threads end when the pool is dropped.
    pub(crate) fn start(
        name: &str,
        threads: usize,
        queue_per_worker: usize,
        priority: Priority,
        when_idle: Option<WhenIdle>,
    ) -> std::io::Result<Workers> {
        let threads = threads.max(1);
        let (queue, jobs) = flume::bounded::<Job>(threads * queue_per_worker);
        let when_idle = when_idle.map(Arc::new);
        for index in 0..threads {
            let (jobs, when_idle, pool) = (jobs.clone(), when_idle.clone(), name.to_owned());
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || work(&pool, &jobs, priority, when_idle.as_deref()))?;
        }
        Ok(Workers { queue })
    }

    /// Runs `job` on a worker: waits for room in the queue, then for the answer.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, NotDone> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // A caller that went away no longer waits: nothing to do.
            let _ = answer.send(job());
        });
        self.queue.send_async(job).await.map_err(|_| NotDone)?;
        // A job that panicked dropped its sender.
        answered.await.map_err(|_| NotDone)
    }
}

/// One worker: lowers its own priority, then runs jobs until the pool is dropped.
fn work(pool: &str, jobs: &flume::Receiver<Job>, priority: Priority, when_idle: Option<&WhenIdle>) {
    if let Err(e) = lower(priority) {
        tracing::warn!(workers = pool, error = %e, "could not lower the workers' CPU priority");
    }
    loop {
        let job = match when_idle {
            None => jobs.recv().ok(),
            Some(idle) => match jobs.recv_timeout(idle.after) {
                Ok(job) => Some(job),
                Err(flume::RecvTimeoutError::Timeout) => {
                    (idle.run)();
                    jobs.recv().ok()
                }
                Err(flume::RecvTimeoutError::Disconnected) => None,
            },
        };
        let Some(job) = job else { return };
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

/// Lowers the calling thread's CPU priority to `priority`.
pub(crate) fn lower(priority: Priority) -> Result<(), String> {
    match priority {
        #[cfg(target_os = "linux")]
        Priority::Idle => {
            use thread_priority::unix::{
                set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
                ThreadSchedulePolicy,
            };
            set_thread_priority_and_policy(
                thread_native_id(),
                ThreadPriority::Min,
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
            )
            .map_err(|e| e.to_string())
        }
        #[cfg(not(target_os = "linux"))]
        Priority::Idle => thread_priority::set_current_thread_priority(ThreadPriority::Min)
            .map_err(|e| e.to_string()),
        Priority::Lowered(value) => thread_priority::ThreadPriorityValue::try_from(value)
            .map_err(|e| e.to_string())
            .and_then(|value| {
                thread_priority::set_current_thread_priority(ThreadPriority::Crossplatform(value))
                    .map_err(|e| e.to_string())
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Jobs answer on the pool's threads; a panicking job loses its answer and the pool goes
    /// on; the idle hook runs once per idle spell, on the workers.
    #[tokio::test]
    async fn jobs_run_on_the_workers_and_a_panic_loses_only_its_answer() {
        let idled = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&idled);
        let workers = Workers::start(
            "stride-test-workers",
            cores(),
            4,
            Priority::Lowered(23),
            Some(WhenIdle {
                after: Duration::from_millis(100),
                run: Arc::new(move || {
                    assert!(std::thread::current()
                        .name()
                        .is_some_and(|n| n.starts_with("stride-test-workers-")));
                    counted.fetch_add(1, Ordering::Relaxed);
                }),
            }),
        )
        .expect("workers");
        let name = workers
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .expect("answer");
        assert!(name.is_some_and(|n| n.starts_with("stride-test-workers-")));
        assert!(workers
            .run(|| -> u8 { panic!("a job panics") })
            .await
            .is_err());
        for i in 0..32u32 {
            assert_eq!(workers.run(move || i * 2).await.expect("answer"), i * 2);
        }
        // Idle, each worker calls the hook once, then waits without a timeout.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let calls = idled.load(Ordering::Relaxed);
        assert!(calls >= 1, "no idle call");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            idled.load(Ordering::Relaxed),
            calls,
            "the hook ran again without a job"
        );
        // A job ends the idle spell: the next one calls the hook again.
        assert_eq!(workers.run(|| 7).await.expect("answer"), 7);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(idled.load(Ordering::Relaxed) > calls);
    }
}
