//! argon2id password hashing and the strength check of new passwords, off the async workers.
//!
//! The work runs on a few threads of its own at the lowest CPU priority (`SCHED_IDLE` on
//! Linux), fed through a bounded queue: one worker per [`LANES`] cores (at least one), whose
//! hashes compute their lanes at once on a pool of one thread per core (argon2's `parallel`
//! feature, on rayon):
//! - a login storm queues hashes instead of spawning threads, and uses every core that nothing
//!   else wants, while cheap requests pre-empt it (the login-flood figures in BENCHMARKS.md);
//! - argon2's memory (7 MiB a hash) stays with those few workers while hashes come, and goes
//!   back to the system once a worker has had none for [`KEEP_MEMORY_IDLE`]; on tokio's
//!   blocking pool every new thread kept one of its own, and a flood grew the process to
//!   hundreds of MiB. Two cores hash one password at a time, in about half the time, where
//!   each hashed one of its own: half the memory, for 12–14 % more time per hash in all (the
//!   lanes wait for each other at each of the 20 slices: BENCHMARKS.md, "one hash on all
//!   cores").
//!
//! Verifying for an unknown account runs against a dummy hash, so the answer takes the same time
//! whether the account exists or not.

use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use crate::db::Db;
use crate::error::ApiError;
use crate::throttle::{self, ThrottleConfig, Verdict};
use crate::users;
use crate::validate::{Password, PasswordProblem};
use crate::workers::{Priority, WhenIdle, Workers};

/// argon2id with the leanest of OWASP's equivalent parameter sets (Password Storage Cheat
/// Sheet: 46 MiB × 1 pass, 19 × 2, 12 × 3, 9 × 4, 7 × 5): 7 MiB, 5 passes, the same work as
/// 9 MiB × 4 (35 against 36 MiB-passes) in 2 MiB less per hash, which a worker holds while
/// logins come (the server's peak memory: BENCHMARKS.md). Hashes made with other parameters
/// still verify: a PHC string carries its own (the worker's memory grows for them), and a
/// login re-hashes them with these ([`needs_rehash`]).
const MEMORY_KIB: u32 = 7 * 1024;
const PASSES: u32 = 5;
/// Four lanes (RFC 9106's degree of parallelism, as in its first recommended option; OWASP's
/// table gives one): the same memory and the same number of block computations as one lane,
/// so the same cost to an attacker per guess, but the cores compute a hash's lanes at once and
/// a login waits half as long on two cores. Four rather than two: when a request pre-empts one
/// lane's thread, the other thread takes the lanes not yet started instead of waiting at the
/// end of the slice (on 2 cores, 117–137 logins/s against 106–126 with two lanes). Fixed, not
/// the number of cores: a hash's cost must not depend on the machine that made it.
pub const LANES: u32 = 4;
const SALT_LEN: usize = 16;

/// Jobs waiting for a worker, per worker, before callers wait to queue theirs.
const QUEUE_PER_WORKER: usize = 64;
/// How long a worker keeps its argon2 memory with no job to run. Logins in a burst reuse it; a
/// server between bursts does not hold 7 MiB per core for nothing (BENCHMARKS.md, "argon2's
/// memory given back between bursts"). Made again, it costs the first hash after a pause the
/// writing of 7 MiB of fresh pages, about a millisecond, against a hash of about 13 ms.
pub const KEEP_MEMORY_IDLE: Duration = Duration::from_secs(2);

/// How a credentials check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a verified sign-in is recorded with SignIn::record"]
pub enum Credentials {
    /// The password is the account's; [`SignIn::record`] records the success in the caller's
    /// transaction.
    Verified(SignIn),
    /// Unknown address or wrong password: one answer for both.
    Invalid,
    /// Refused before any hashing: a limit is reached.
    Throttled { retry_after: u64 },
}

/// A password that matched, whose success is still to be recorded: the attempt given back, the
/// account's failures forgotten, the client remembered as one of its own. Recorded in the
/// transaction of what the success leads to (the new session), so that a login takes SQLite's
/// write lock twice in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub user_id: i64,
    account: String,
    client: Option<IpAddr>,
    record_client: bool,
    /// The account's hash had other parameters: it is replaced by this one, of the same
    /// password ([`needs_rehash`]).
    rehash: Option<Rehash>,
}

/// A stored hash and its replacement.
#[derive(Clone, PartialEq, Eq)]
struct Rehash {
    stored: String,
    new: String,
}

impl std::fmt::Debug for Rehash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rehash")
    }
}

impl SignIn {
    pub async fn record(
        &self,
        conn: &mut sqlx::AnyConnection,
        throttling: &ThrottleConfig,
    ) -> Result<(), sqlx::Error> {
        throttle::forget_login_failures(conn, throttling, &self.account).await?;
        // Of the attempt, only the client's counter remains (the account's were just
        // forgotten): it was not a failure.
        throttle::refund_login_of_client(conn, throttling, self.client).await?;
        if self.record_client {
            throttle::know_client(conn, throttling, &self.account, self.client).await?;
        }
        if let Some(rehash) = &self.rehash {
            // Only over the hash that matched: a password changed meanwhile stays.
            users::replace_password_hash(conn, self.user_id, &rehash.stored, &rehash.new).await?;
        }
        Ok(())
    }
}

impl Credentials {
    /// The sign-in, or FitTrackee's 401 "invalid credentials", or a 429.
    pub fn verified(self) -> Result<SignIn, ApiError> {
        match self {
            Credentials::Verified(sign_in) => Ok(sign_in),
            Credentials::Invalid => Err(ApiError::unauthorized(crate::auth::INVALID_CREDENTIALS)),
            Credentials::Throttled { retry_after } => {
                Err(ApiError::too_many_requests(throttle::TOO_MANY, retry_after))
            }
        }
    }
}

pub struct Passwords {
    workers: Workers,
    /// The threads that compute a hash's lanes, one per core (at the workers' priority).
    lanes: Arc<rayon::ThreadPool>,
    /// A real hash of a random password, for unknown accounts.
    dummy: Arc<str>,
    /// Bytes of argon2 memory the workers hold now.
    held: Arc<AtomicUsize>,
}

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(MEMORY_KIB, PASSES, LANES, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// A worker's argon2 memory, made on its first hash and kept while hashes come: the crate's
    /// own allocation on every hash left glibc's per-thread arenas holding three times the
    /// memory (measured). Dropped after [`KEEP_MEMORY_IDLE`] without a job: one block that large
    /// is its own mapping, which goes back to the system whole.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
    /// The bytes of [`MEMORY`] this worker last counted in its pool's `held`.
    static COUNTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Brings `held` up to date with this worker's memory: before a job answers, so that whoever
/// got the answer sees the count of it.
fn count_memory(held: &AtomicUsize) {
    let now = MEMORY.with_borrow(|m| std::mem::size_of_val(&m[..]));
    let counted = COUNTED.replace(now);
    if now > counted {
        held.fetch_add(now - counted, Ordering::Relaxed);
    } else {
        held.fetch_sub(counted - now, Ordering::Relaxed);
    }
}

/// Runs argon2 for `password` and `salt` with this thread's memory, grown when `params` need
/// more (a hash made with larger parameters), its lanes computed at once on `lanes`. Every
/// hash runs inside `lanes`: outside any pool, the crate's parallel lanes would start rayon's
/// global pool, at normal priority.
fn argon2_into(
    lanes: &rayon::ThreadPool,
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    MEMORY.with_borrow_mut(|memory| {
        let blocks = argon2.params().block_count();
        if memory.len() < blocks {
            *memory = vec![Block::default(); blocks];
        }
        let memory = &mut memory[..];
        lanes.install(|| argon2.hash_password_into_with_memory(password, salt, out, memory))
    })
}

/// The pool of threads that compute lanes: one per core, named `stride-argon2-N`, at the
/// lowest priority like the workers.
fn lanes_pool() -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(crate::workers::cores())
        .thread_name(|index| format!("stride-argon2-{index}"))
        .start_handler(|_| {
            if let Err(e) = crate::workers::lower(Priority::Idle) {
                tracing::warn!(error = %e, "could not lower the argon2 lanes' CPU priority");
            }
        })
        .build()
}

/// A new PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) with a random salt.
fn hash_blocking(lanes: &rayon::ThreadPool, password: &[u8]) -> Result<String, String> {
    let argon2 = argon2();
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(lanes, &argon2, password, &salt, &mut out).map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// True when `stored` is a hash this version would not make: another algorithm, version or
/// parameters (fewer lanes included). A login that matched such a hash stores a new one
/// ([`SignIn::record`]): the account then costs what every other costs, and a verification of
/// it takes as long as the unknown accounts' dummy.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let ours = (MEMORY_KIB, PASSES, LANES, Some(Params::DEFAULT_OUTPUT_LEN));
    phc.algorithm.as_str() != Algorithm::Argon2id.ident().as_str()
        || phc.version != Some(Version::V0x13.into())
        || Params::try_from(&phc).map_or(true, |p| {
            (p.m_cost(), p.t_cost(), p.p_cost(), p.output_len()) != ours
        })
}

/// True when `password` hashes to `stored` (with the parameters `stored` names). `Output`
/// compares in constant time.
fn verify_blocking(lanes: &rayon::ThreadPool, password: &[u8], stored: &str) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(phc.algorithm.as_str()),
        Params::try_from(&phc),
    ) else {
        return false;
    };
    let version = phc
        .version
        .map_or(Ok(Version::default()), Version::try_from);
    let Ok(version) = version else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if argon2_into(lanes, &argon2, password, salt.as_ref(), &mut out).is_err() {
        return false;
    }
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

impl Passwords {
    /// Starts one worker per [`LANES`] cores and the lanes' pool (more concurrent hashes only
    /// add memory and latency) and makes the dummy hash on them.
    pub async fn new() -> Result<Passwords, ApiError> {
        Passwords::with_idle(KEEP_MEMORY_IDLE).await
    }

    /// [`Passwords::new`] with workers that keep their memory for `idle` without a job.
    pub async fn with_idle(idle: Duration) -> Result<Passwords, ApiError> {
        let held = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&held);
        let release = WhenIdle {
            after: idle,
            run: Arc::new(move || {
                MEMORY.with_borrow_mut(|m| *m = Vec::new());
                count_memory(&counted);
            }),
        };
        // The lowest priority there is (SCHED_IDLE on Linux): under a login flood the
        // profile's p99 grew 1.5× with it, 2.3× at nice 19, in one measurement on PostgreSQL.
        let cores = crate::workers::cores();
        let workers = Workers::start(
            "stride-passwords",
            cores.div_ceil(LANES as usize),
            QUEUE_PER_WORKER,
            Priority::Idle,
            Some(release),
        )
        .map_err(|e| ApiError::internal("starting the password workers", e))?;
        let lanes = lanes_pool().map_err(|e| ApiError::internal("starting the argon2 lanes", e))?;
        let mut passwords = Passwords {
            workers,
            lanes: Arc::new(lanes),
            dummy: Arc::from(""),
            held,
        };
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| ApiError::internal("no OS randomness", e))?;
        passwords.dummy = passwords
            .on_workers(move |lanes| hash_blocking(lanes, &random))
            .await?
            .map_err(|e| ApiError::internal("argon2", e))?
            .into();
        Ok(passwords)
    }

    /// Bytes of argon2 memory the workers hold now: 7 MiB for each that hashed within
    /// [`KEEP_MEMORY_IDLE`], none once they are all idle.
    pub fn memory_held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Runs `work` on a password worker and waits for its answer.
    async fn on_workers<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rayon::ThreadPool) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let held = Arc::clone(&self.held);
        let lanes = Arc::clone(&self.lanes);
        self.workers
            .run(move || {
                let out = work(&lanes);
                // Before the answer goes: whoever gets it sees the memory counted.
                count_memory(&held);
                out
            })
            .await
            .map_err(|_| ApiError::internal("password workers", "the job was not done"))
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.on_workers(move |lanes| hash_blocking(lanes, password.as_bytes()))
            .await?
            .map_err(|e| ApiError::internal("argon2", e))
    }

    /// The hash of a random password nobody knows (an account locked until its reset): the
    /// password stops working, and the account stays one argon2 verification like any other.
    pub async fn unusable_hash(&self) -> Result<String, ApiError> {
        let secret =
            crate::tokens::link_token().map_err(|e| ApiError::internal("a password", e))?;
        self.hash(secret).await
    }

    /// The validation line for a new password weaker than `min_strength` (zxcvbn's score, with
    /// the account's own `words` known), or None. Runs on the password workers like the hashes:
    /// zxcvbn takes up to a few milliseconds on a long password. `min_strength` 0 costs nothing.
    pub async fn screen(
        &self,
        password: &Password,
        words: &[String],
        min_strength: u8,
    ) -> Result<Option<PasswordProblem>, ApiError> {
        if min_strength == 0 {
            return Ok(None);
        }
        let (password, words) = (password.clone(), words.to_vec());
        let strength = self
            .on_workers(move |_| {
                let words: Vec<&str> = words.iter().map(String::as_str).collect();
                password.strength(&words)
            })
            .await?;
        Ok((strength < min_strength).then_some(PasswordProblem::Guessable))
    }

    /// Whether `password` is the password of the account whose address key is `account`: the
    /// check behind a login and behind a change that confirms the current password.
    ///
    /// The attempt is counted first ([`throttle::take`]), atomically, and refused past any
    /// limit before anything is hashed, so a burst of concurrent guesses gets no more answers
    /// than the limit. An unknown address costs the same argon2 work as a wrong password; both
    /// stay counted as failures. A match is a [`SignIn`], which the caller records.
    pub async fn check_credentials(
        &self,
        db: &Db,
        throttling: &ThrottleConfig,
        account: &str,
        client: Option<IpAddr>,
        password: String,
    ) -> Result<Credentials, ApiError> {
        // The reads first, outside any writer's turn; then one writing transaction counts the
        // attempt (on SQLite, one turn at the write lock: db::begin_write). The caller records a
        // success in its own.
        let (attempt, found) = {
            let mut conn = db.acquire().await?;
            let attempt = throttle::login_attempt(&mut conn, throttling, account, client).await?;
            (attempt, users::credentials(&mut conn, account).await?)
        };
        let record_client = attempt.record_client;
        {
            let mut tx = crate::db::begin_write(db).await?;
            let verdict = throttle::take(&mut tx, throttling, &attempt.counters).await?;
            tx.commit().await?;
            if let Verdict::Refused { retry_after } = verdict {
                return Ok(Credentials::Throttled { retry_after });
            }
        }
        // Never hash an oversized input: no account can have such a password anyway.
        let acceptable = password.chars().count() <= crate::config::MAX_PASSWORD_LENGTH;
        // A pending or deactivated account fails like a wrong password, after the same work.
        let (user_id, hash) = found.map_or((None, None), |c| {
            (Some(c.id).filter(|_| c.active), Some(c.password_hash))
        });
        let stale = hash
            .as_deref()
            .filter(|h| needs_rehash(h))
            .map(str::to_owned);
        let verified = acceptable && self.verify(password.clone(), hash).await?;
        let Some(user_id) = user_id.filter(|_| verified) else {
            return Ok(Credentials::Invalid);
        };
        let rehash = match stale {
            Some(stored) => Some(Rehash {
                stored,
                new: self.hash(password).await?,
            }),
            None => None,
        };
        Ok(Credentials::Verified(SignIn {
            user_id,
            account: account.to_owned(),
            client,
            record_client,
            rehash,
        }))
    }

    /// True when `password` matches `stored`. With no stored hash (unknown account) it spends
    /// the same time on the dummy hash and answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy.to_string());
        let matched = self
            .on_workers(move |lanes| verify_blocking(lanes, password.as_bytes(), &hash))
            .await?;
        Ok(known && matched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_and_verify() {
        let passwords = Passwords::new().await.expect("hasher");
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=4$"), "{hash}");
        assert!(!needs_rehash(&hash));
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

    /// A worker keeps its memory between hashes and gives it back after `idle` without one,
    /// and makes it again for the next hash; memory grown for larger parameters goes too.
    #[tokio::test]
    async fn workers_let_their_memory_go_when_idle() {
        let idle = Duration::from_millis(300);
        let passwords = Passwords::with_idle(idle).await.expect("hasher");
        let ours = MEMORY_KIB as usize * 1024;
        // The dummy hash was made on one worker at start.
        assert_eq!(passwords.memory_held(), ours);
        let wait_idle = || async {
            let deadline = std::time::Instant::now() + idle * 20;
            while passwords.memory_held() != 0 && std::time::Instant::now() < deadline {
                tokio::time::sleep(idle / 4).await;
            }
        };
        wait_idle().await;
        assert_eq!(passwords.memory_held(), 0, "an idle worker kept its memory");

        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert_eq!(passwords.memory_held(), ours);
        wait_idle().await;
        assert_eq!(passwords.memory_held(), 0);
        // After the release, the next verification makes the memory again and still matches.
        assert!(passwords
            .verify("correct horse".into(), Some(hash))
            .await
            .expect("verify"));
        assert_eq!(passwords.memory_held(), ours);

        // A hash of an earlier version's parameters (19 MiB) grows the memory, which goes too.
        use argon2::password_hash::PasswordHasher as _;
        let params = Params::new(19 * 1024, 2, 1, None).expect("params");
        let earlier = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        assert!(passwords
            .verify("correct horse".into(), Some(earlier))
            .await
            .expect("verify"));
        let held = passwords.memory_held();
        assert!(held >= 19 * 1024 * 1024, "{held}");
        wait_idle().await;
        assert_eq!(passwords.memory_held(), 0);
    }

    /// Hashes stored by earlier versions (the crate's own API, 19 MiB × 2) still verify, and
    /// the crate verifies ours: one PHC format.
    #[test]
    fn interoperates_with_the_crates_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(19 * 1024, 2, 1, None).expect("params");
        let earlier = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        let lanes = lanes_pool().expect("lanes");
        assert!(verify_blocking(&lanes, b"correct horse", &earlier));
        assert!(!verify_blocking(&lanes, b"correct horsf", &earlier));
        let ours = hash_blocking(&lanes, b"correct horse").expect("hash");
        assert!(argon2()
            .verify_password(b"correct horse", ours.as_str())
            .is_ok());
        assert!(argon2()
            .verify_password(b"correct horsf", ours.as_str())
            .is_err());
        // Memory grown for the larger parameters still serves the smaller ones.
        assert!(verify_blocking(&lanes, b"correct horse", &ours));
        assert!(!verify_blocking(
            &lanes,
            b"correct horse",
            "$argon2id$v=19$m=9216,t=4,p=1$c2FsdA$"
        ));
    }

    /// Hashes of other parameters, algorithms or versions are re-hashed at the next login;
    /// ours, and what is not a hash at all, are not.
    #[test]
    fn hashes_of_other_parameters_need_a_new_one() {
        use argon2::password_hash::PasswordHasher as _;
        let lanes = lanes_pool().expect("lanes");
        let ours = hash_blocking(&lanes, b"correct horse").expect("hash");
        assert!(!needs_rehash(&ours));
        let of = |algorithm, version, m, t, p| {
            let params = Params::new(m, t, p, None).expect("params");
            Argon2::new(algorithm, version, params)
                .hash_password(b"correct horse")
                .expect("hash")
                .to_string()
        };
        let id = Algorithm::Argon2id;
        assert!(!needs_rehash(&of(
            id,
            Version::V0x13,
            MEMORY_KIB,
            PASSES,
            LANES
        )));
        // The previous version's one lane, two lanes, an earlier version's 19 MiB × 2 and
        // 9 MiB × 4.
        assert!(needs_rehash(&of(id, Version::V0x13, MEMORY_KIB, PASSES, 1)));
        assert!(needs_rehash(&of(id, Version::V0x13, MEMORY_KIB, PASSES, 2)));
        assert!(needs_rehash(&of(id, Version::V0x13, 19 * 1024, 2, 1)));
        assert!(needs_rehash(&of(id, Version::V0x13, 9 * 1024, 4, 1)));
        assert!(needs_rehash(&of(
            Algorithm::Argon2i,
            Version::V0x13,
            MEMORY_KIB,
            PASSES,
            LANES
        )));
        assert!(needs_rehash(&of(
            id,
            Version::V0x10,
            MEMORY_KIB,
            PASSES,
            LANES
        )));
        assert!(!needs_rehash("not a hash"));
        assert!(!needs_rehash(""));
    }

    /// The lanes' pool computes a hash's four lanes on every core: however many hashes are
    /// asked at once, the workers hold one hash's memory per four cores (on two cores, one
    /// hash's, where two one-lane workers held two). The lanes' threads run at the lowest
    /// priority.
    #[tokio::test]
    async fn the_cores_compute_one_hash_at_a_time_and_hold_its_memory_once() {
        let passwords = Arc::new(Passwords::new().await.expect("hasher"));
        let cores = crate::workers::cores();
        assert_eq!(passwords.lanes.current_num_threads(), cores);
        let hashes: Vec<_> = (0..4 * cores)
            .map(|i| {
                let passwords = Arc::clone(&passwords);
                tokio::spawn(async move { passwords.hash(format!("password {i}")).await })
            })
            .collect();
        for hash in hashes {
            let hash = hash.await.expect("task").expect("hash");
            assert!(hash.contains("p=4$"), "{hash}");
        }
        let ours = MEMORY_KIB as usize * 1024;
        assert_eq!(
            passwords.memory_held(),
            cores.div_ceil(LANES as usize) * ours
        );
        // The lanes' threads are one per core, all at the workers' priority.
        #[cfg(target_os = "linux")]
        {
            use thread_priority::unix::{
                thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
            };
            let policies = std::sync::Mutex::new(Vec::new());
            passwords.lanes.broadcast(|_| {
                let policy = thread_schedule_policy().expect("policy");
                policies.lock().expect("lock").push(policy);
            });
            let policies = policies.into_inner().expect("lock");
            assert_eq!(policies.len(), cores);
            assert!(policies
                .iter()
                .all(|p| *p == ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)));
        }
    }
}
