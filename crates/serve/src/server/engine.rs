//! The server's one model thread: it takes the queued requests, generates them together
//! ([`fairrec_lm::generate`]: every pending sequence batched into one forward pass per
//! generated position) and hands each request its generations.

pub use fairrec_lm::generate::{generate, Generation, Step, Work};
use fairrec_lm::score::Scorer;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;

/// Why a request got no generations: an HTTP status and a message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: u16,
    pub message: String,
}

/// A reply callback: receives the generations (prompt-major, then choice) or a failure.
pub type Reply<'a> = Box<dyn FnOnce(Result<Vec<Generation>, Failure>) + Send + 'a>;

/// A queued request.
pub struct Job<'a> {
    pub work: Work,
    pub reply: Reply<'a>,
}

/// Counters shared with the HTTP threads.
#[derive(Default)]
pub struct Counters {
    /// Requests answered by the model (success).
    pub answered: AtomicU64,
    /// Requests waiting in the queue.
    pub queued: AtomicUsize,
}

/// The model thread's loop: until every sender is gone, take one job, then whatever else
/// is waiting (up to `max_jobs`), and run them together.
pub fn run(scorer: &Scorer, rx: Receiver<Job<'_>>, batch: usize, max_jobs: usize, c: &Counters) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_jobs {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        c.queued.fetch_sub(jobs.len(), Ordering::SeqCst);
        let works: Vec<&Work> = jobs.iter().map(|j| &j.work).collect();
        match generate(scorer, &works, batch) {
            Ok(mut per_job) => {
                for (job, gens) in jobs.into_iter().zip(per_job.drain(..)) {
                    c.answered.fetch_add(1, Ordering::SeqCst);
                    (job.reply)(Ok(gens));
                }
            }
            Err(e) => {
                tracing::error!("generation failed: {e}");
                for job in jobs {
                    (job.reply)(Err(Failure {
                        status: 500,
                        message: format!("generation failed: {e}"),
                    }));
                }
            }
        }
    }
}
