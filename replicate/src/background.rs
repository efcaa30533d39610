//! A thread at lower CPU priority for replication's heavy lifting (checking and storing received
//! entries), so that latency-sensitive work in the same process — a notary's decisions beside
//! the node — is scheduled first when the cores are busy. The operating system still gives the
//! thread whatever CPU is idle: replication only slows down while something else needs the
//! cores. On Linux the thread runs under the `SCHED_IDLE` policy: a normal thread that wants
//! its core gets it at the next scheduling decision (at the latest the next timer tick: seen
//! to take up to 4 ms on a `PREEMPT_NONE`, HZ = 250 kernel); under a raised nice value alone it
//! could wait behind it for whole slices, which showed as milliseconds of proposal latency
//! while a feed replicated. If that policy is refused, it falls back to
//! [`BACKGROUND_NICE`]. The threads that verify a batch in parallel are started from this
//! thread and inherit both (Linux: policy and nice value are per thread and inherited).

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::limits::BACKGROUND_QUEUE;

/// The nice value of the background thread: 10 gives it about a tenth of the CPU share of a
/// normal thread while both want the same core.
pub const BACKGROUND_NICE: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// A handle on the background thread; the thread ends when every handle is dropped.
#[derive(Clone, Debug)]
pub struct Background {
    jobs: mpsc::Sender<Job>,
}

impl Background {
    /// Starts the thread. If its priority cannot be lowered (not Linux, or refused), it runs at
    /// normal priority and says so in the log.
    pub fn start() -> Result<Background> {
        // Threads the storage engine starts from this one would inherit its priority.
        if let Err(err) = scrip_feed::store::durable::start_io_threads() {
            tracing::warn!(%err, "the storage engine's I/O threads may start at idle priority");
        }
        let (jobs, mut queue) = mpsc::channel::<Job>(BACKGROUND_QUEUE);
        std::thread::Builder::new()
            .name("scrip-ingest".into())
            .spawn(move || {
                if let Err(err) = lower_priority() {
                    tracing::info!(%err, "replication ingest runs at normal CPU priority");
                }
                while let Some(job) = queue.blocking_recv() {
                    job();
                }
            })
            .map_err(|e| Error::io("starting the ingest thread", &e))?;
        Ok(Background { jobs })
    }

    /// Runs `call` on the background thread and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(call());
        });
        self.jobs.send(job).await.map_err(|_| Error::Shutdown)?;
        answer.await.map_err(|_| Error::Shutdown)
    }
}

/// A multi-thread tokio runtime (one worker per core) whose every thread — workers and the
/// blocking pool — runs at lower priority ([`lower_priority`]), for a whole node beside
/// latency-sensitive work in the same process: `scrip serve --notary` runs its node on one, so
/// that decrypting and decoding what peers send, not only checking and storing it (the ingest
/// thread), waits while the notary's decisions need the cores. On the notary's own runtime
/// the node's tasks shared its workers, and tokio does not preempt a task: a proposal waited
/// behind a frame being decoded (`scrip bench load`: loaded p99 as proposals/s 238–360 on
/// one runtime, 333–392 on two, alternated runs). Its threads are named [`RUNTIME_THREAD`].
/// Dropped, it shuts down without waiting (allowed inside an async context, unlike dropping a
/// tokio runtime): stop what runs on it first.
#[derive(Debug)]
pub struct NodeRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl NodeRuntime {
    /// Starts the runtime's threads.
    pub fn start() -> Result<NodeRuntime> {
        // Threads the storage engine starts from the runtime's would inherit its priority.
        if let Err(err) = scrip_feed::store::durable::start_io_threads() {
            tracing::warn!(%err, "the storage engine's I/O threads may start at idle priority");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(RUNTIME_THREAD)
            .on_thread_start(|| {
                if let Err(err) = lower_priority() {
                    tracing::info!(%err, "the node's runtime runs at normal CPU priority");
                }
            })
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the node's runtime", &e))?;
        Ok(NodeRuntime {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the runtime (tasks it spawns stay there) and returns its output.
    pub async fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().ok_or(Error::Shutdown)?;
        runtime.spawn(future).await.map_err(|_| Error::Shutdown)
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The name of every thread of a [`NodeRuntime`].
pub const RUNTIME_THREAD: &str = "scrip-node";

/// Lowers the calling thread's CPU priority: `SCHED_IDLE`, and [`BACKGROUND_NICE`] (which is
/// what counts if the policy could not be set). Threads it starts afterwards inherit both.
/// Used by the ingest thread, and by benchmarks for a peer that stands for another machine.
#[cfg(target_os = "linux")]
pub fn lower_priority() -> std::io::Result<()> {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, thread_native_id,
    };
    if let Err(err) = thread_priority::set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        tracing::info!(
            ?err,
            "replication ingest runs without the idle scheduling policy"
        );
    }
    // On Linux, PRIO_PROCESS with a thread id reads and sets that thread's nice value alone.
    let me = Some(rustix::thread::gettid());
    if rustix::process::getpriority_process(me)? >= BACKGROUND_NICE {
        return Ok(());
    }
    rustix::process::setpriority_process(me, BACKGROUND_NICE).map_err(std::io::Error::from)
}

/// Lowering a thread's priority is only done on Linux.
#[cfg(not(target_os = "linux"))]
pub fn lower_priority() -> std::io::Result<()> {
    Err(std::io::Error::other(
        "per-thread priority is only set on Linux",
    ))
}

/// The calling thread's nice value (tests).
#[cfg(all(test, target_os = "linux"))]
fn own_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

/// Whether the calling thread runs under `SCHED_IDLE` (tests).
#[cfg(all(test, target_os = "linux"))]
fn own_policy_is_idle() -> bool {
    use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
    thread_priority::thread_schedule_policy().ok()
        == Some(ThreadSchedulePolicy::Normal(
            NormalThreadSchedulePolicy::Idle,
        ))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The scheduling policy of every thread of this process named `sled-io-*`.
    fn sled_io_policies() -> Vec<u32> {
        let mut policies = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let path = task.unwrap().path();
            let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            if !name.starts_with("sled-io-") {
                continue;
            }
            let stat = std::fs::read_to_string(path.join("stat")).unwrap();
            // Fields after the command's closing parenthesis start at field 3; the policy is 41.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            policies.push(rest.split(' ').nth(41 - 3).unwrap().parse().unwrap());
        }
        policies
    }

    /// A first write to a store, from `writer`, in this process.
    fn first_write(writer: impl FnOnce(Box<dyn FnOnce() + Send>)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        writer(Box::new(move || {
            let db = scrip_feed::store::durable::DurableDb::open(&path, 1 << 20, b"t").unwrap();
            let mut writes = scrip_feed::store::durable::Writes::default();
            writes.insert(b"k".to_vec(), vec![1; 100]);
            db.commit(writes).unwrap();
        }));
    }

    const SCHED_OTHER: u32 = 0;
    const SCHED_IDLE: u32 = 5;

    /// sled's I/O threads are process-wide and started by the first thread that writes; a
    /// thread inherits its creator's policy. Written first from the background thread, they
    /// still run at normal priority. (In a process of its own, where nothing started them.)
    #[test]
    fn storage_io_threads_stay_at_normal_priority_when_the_background_thread_writes_first() {
        if !scrip_feed::bench::run_alone(
            "background::tests::storage_io_threads_stay_at_normal_priority_when_the_background_thread_writes_first",
        ) {
            return;
        }
        let background = Background::start().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        first_write(|write| runtime.block_on(background.run(write)).unwrap());
        let policies = sled_io_policies();
        assert!(!policies.is_empty(), "no sled I/O thread was started");
        assert!(policies.iter().all(|&p| p == SCHED_OTHER), "{policies:?}");
    }

    /// The control for the test above: written first from a thread at idle priority, without
    /// [`Background::start`], sled's I/O threads run at idle priority (so the test can see the
    /// difference).
    #[test]
    fn storage_io_threads_inherit_idle_priority_from_a_thread_that_writes_first() {
        if !scrip_feed::bench::run_alone(
            "background::tests::storage_io_threads_inherit_idle_priority_from_a_thread_that_writes_first",
        ) {
            return;
        }
        first_write(|write| {
            std::thread::spawn(move || {
                lower_priority().unwrap();
                write();
            })
            .join()
            .unwrap();
        });
        let policies = sled_io_policies();
        assert!(!policies.is_empty(), "no sled I/O thread was started");
        assert!(policies.iter().all(|&p| p == SCHED_IDLE), "{policies:?}");
    }

    /// Every thread of a background runtime — a worker running a task, a blocking-pool thread —
    /// runs under `SCHED_IDLE` at the background nice value, and the caller's is untouched.
    #[tokio::test]
    async fn a_background_runtime_runs_its_tasks_and_blocking_calls_at_lower_priority() {
        let runtime = NodeRuntime::start().unwrap();
        let here = own_nice();
        let task = runtime
            .run(async {
                let blocking = tokio::task::spawn_blocking(|| {
                    (own_nice(), own_policy_is_idle(), thread_name())
                })
                .await
                .unwrap();
                ((own_nice(), own_policy_is_idle(), thread_name()), blocking)
            })
            .await
            .unwrap();
        drop(runtime);
        for (nice, idle, name) in [task.0, task.1] {
            assert!(idle, "{name} runs under SCHED_IDLE");
            assert_eq!(nice, BACKGROUND_NICE.max(here), "{name}'s nice value");
            assert_eq!(name, RUNTIME_THREAD);
        }
        assert!(!own_policy_is_idle(), "the caller's policy is untouched");
        assert_eq!(own_nice(), here, "the caller's priority is untouched");
    }

    fn thread_name() -> String {
        std::thread::current().name().unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn jobs_run_in_order_on_a_thread_at_lower_priority_and_threads_it_starts_inherit_it() {
        let background = Background::start().unwrap();
        let here = own_nice();
        let ((there, there_idle), (helper, helper_idle)) = background
            .run(|| {
                let helper = std::thread::spawn(|| (own_nice(), own_policy_is_idle()))
                    .join()
                    .unwrap();
                ((own_nice(), own_policy_is_idle()), helper)
            })
            .await
            .unwrap();
        assert!(there_idle, "the ingest thread runs under SCHED_IDLE");
        assert!(helper_idle, "so does a verification helper thread");
        assert!(!own_policy_is_idle(), "the caller's policy is untouched");
        assert_eq!(
            there,
            BACKGROUND_NICE.max(here),
            "the ingest thread's nice value"
        );
        assert_eq!(helper, there, "a verification helper thread's nice value");
        assert_eq!(own_nice(), here, "the caller's priority is untouched");
        let mut order = Vec::new();
        for i in 0..40 {
            order.push(background.run(move || i).await.unwrap());
        }
        assert_eq!(order, (0..40).collect::<Vec<_>>());
    }
}
