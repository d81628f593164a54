//! CPU-heavy background work on a thread of its own at the lowest scheduling priority, so that
//! request threads get the cores first.
//!
//! Training recommendations on tokio's blocking pool took a core from requests for seconds: a
//! fifth of the samples in a profile of a search bench on two cores. At nice 19 the training
//! gets about 1/70 of a core that a request thread wants, and all of a core nobody wants.

use std::io;

/// Runs `work` on a new thread named `name` at the lowest priority; its result, or an error if
/// the thread could not start or panicked.
pub async fn run<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        lower_this_threads_priority();
        // The receiver is gone only if the caller stopped waiting; the result is not wanted then.
        let _ = done.send(work());
    })?;
    result.await.map_err(|_| io::Error::other(format!("the {name} thread panicked")))
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // On Linux a thread id names one thread here, so only this thread is lowered.
    if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %err, "could not lower a background thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}
