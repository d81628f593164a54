//! Argon2id hashing off the async workers: a hash costs tens of milliseconds of CPU and 19 MiB
//! of memory while it runs.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

use super::AuthError;

/// Hashes run one per core at most: a flood of sign-ins waits here instead of filling the
/// blocking pool (which SQLite and tantivy share) and taking memory per hash in flight.
static HASHING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)));

pub async fn hash(password: String) -> Result<String, AuthError> {
    on_a_core(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| AuthError::Hashing(err.to_string()))
    })
    .await
}

pub async fn verify(password: String, stored_hash: String) -> Result<bool, AuthError> {
    on_a_core(move || {
        let parsed = PasswordHash::new(&stored_hash).map_err(|err| AuthError::Hashing(err.to_string()))?;
        Ok(Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
}

async fn on_a_core<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    let _permit = HASHING.acquire().await.map_err(|err| AuthError::Hashing(err.to_string()))?;
    tokio::task::spawn_blocking(work).await.map_err(|err| AuthError::Hashing(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_there_are_cores() {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let work: Vec<_> = (0..cores * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(on_a_core(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }))
            })
            .collect();
        for task in work {
            task.await.expect("task").expect("work");
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=cores).contains(&most), "{most} hashes ran at once on {cores} cores");
    }
}
