//! argon2id password hashing and the strength check of new passwords, off the async workers.
//!
//! Every hash runs on tokio's blocking pool behind a semaphore with one permit per core: a login
//! storm queues hashes instead of spawning a thread (and a 19 MiB arena) per request, and cheap
//! requests keep their workers. Verifying for an unknown account runs against a dummy hash, so
//! the answer takes the same time whether the account exists or not.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;
use crate::validate::{Password, PASSWORD_GUESSABLE};

/// OWASP's argon2id parameters: 19 MiB, 2 passes, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, for unknown accounts.
    dummy: Arc<str>,
}

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_blocking(password: &[u8]) -> Result<String, argon2::password_hash::Error> {
    Ok(argon2().hash_password(password)?.to_string())
}

impl Passwords {
    /// One permit per core: more concurrent hashes only add memory and latency.
    pub fn new() -> Result<Passwords, ApiError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| ApiError::internal("no OS randomness", e))?;
        let dummy = hash_blocking(&random).map_err(|e| ApiError::internal("argon2", e))?;
        Ok(Passwords {
            permits: Arc::new(Semaphore::new(cores)),
            dummy: dummy.into(),
        })
    }

    /// Runs argon2 work on the blocking pool, once a permit is free.
    async fn on_blocking_pool<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::internal("argon2 semaphore", e))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::internal("argon2 task", e))
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.on_blocking_pool(move || hash_blocking(password.as_bytes()))
            .await?
            .map_err(|e| ApiError::internal("argon2", e))
    }

    /// The validation line for a new password weaker than `min_strength` (zxcvbn's score, with
    /// the account's own `words` known), or None. Runs on the blocking pool like the hashes:
    /// zxcvbn takes up to a few milliseconds on a long password. `min_strength` 0 costs nothing.
    pub async fn screen(
        &self,
        password: &Password,
        words: &[String],
        min_strength: u8,
    ) -> Result<Option<&'static str>, ApiError> {
        if min_strength == 0 {
            return Ok(None);
        }
        let (password, words) = (password.clone(), words.to_vec());
        let strength = self
            .on_blocking_pool(move || {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                password.strength(&words)
            })
            .await?;
        Ok((strength < min_strength).then_some(PASSWORD_GUESSABLE))
    }

    /// True when `password` matches `stored`. With no stored hash (unknown account) it spends
    /// the same time on the dummy hash and answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy.to_string());
        let matched = self
            .on_blocking_pool(move || {
                argon2()
                    .verify_password(password.as_bytes(), hash.as_str())
                    .is_ok()
            })
            .await?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let passwords = Passwords::new().expect("hasher");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("wrong horse".into(), Some(hash))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("correct horse".into(), None)
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("x".into(), Some("not a hash".into()))
            .await
            .expect("verify"));
    }
}
