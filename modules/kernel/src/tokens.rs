//! Biscuit session tokens, signed with the deployment's Ed25519 root key.
//!
//! Authority block, written by [`TokenKeys::mint`]: `user(id); session(id); purpose("session");
//! expires(unix seconds); check if time($t), $t <= expiry`.
//!
//! A browser's cookie carries a token of the same session with `purpose("cookie")` and a short
//! expiry ([`TokenKeys::mint_cookie`], docs/browser-sessions.md). Each path accepts only its own
//! purpose, and the cookie path only a token of exactly one block, so a token narrowed by its
//! holder can never be turned into a cookie, nor a cookie into a Bearer token. Its CSRF value
//! is an HMAC of the session id under a key derived from the root key
//! ([`TokenKeys::csrf_value`]): every instance on one database computes the same.
//!
//! A holder may narrow a token offline by appending blocks of checks on the facts the
//! authorizer supplies for a request (`time`, `operation`, `path`, `route`: README, "Sessions and
//! narrowed tokens"). Judging a token costs a bounded, small amount of CPU whatever was
//! appended:
//! - a token longer than [`MAX_TOKEN_LENGTH`] or with more than [`MAX_NARROWINGS`] appended
//!   blocks is refused before any signature is checked;
//! - who a token speaks for is read from the authority block alone (its own Datalog source,
//!   which only the root key can sign), never from a Datalog run, so the session row is read
//!   and a dead or expired session refused before any holder-written Datalog runs;
//! - an appended block may hold only checks ([`NarrowingPolicy`]): no facts, no rules, no
//!   scopes, no third-party signature, a few checks over the request facts with small
//!   expressions, no regular expressions or closures. Evaluating such checks joins a handful of
//!   facts a few ways: microseconds for an ordinary narrowing, under a millisecond for the
//!   costliest the policy allows (BENCHMARKS.md);
//! - narrowed tokens are parsed, vetted and run off the async workers, on a few threads of
//!   their own ([`Judges`]), under biscuit's own run limits as a last bound.
//!
//! The Ed25519 signature is most of an authenticated request's cost, so a token that passed
//! once is remembered by its SHA-256 until it expires: a plain one with what it says, a narrowed
//! one with its vetted checks alone (not the parsed token: under 2 KiB against 7 KiB for an
//! ordinary narrowing), which still run for every request (they read the request). The
//! session's revocation is never remembered here: the guard reads it from the database on every
//! request.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use biscuit_auth::builder::{
    Binary, BlockBuilder, Check, CheckKind, Expression, MapKey, Op, Predicate, Rule, Term, Unary,
};
use biscuit_auth::error::{FailedCheck, Logic, Token as TokenError};
use biscuit_auth::macros::{authorizer, biscuit};
use biscuit_auth::{
    Algorithm, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey, UnverifiedBiscuit,
};
use hmac::{Hmac, Mac};
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use subtle::ConstantTimeEq;

use crate::error::Failure;
use crate::workers::{Priority, Workers};

/// The longest token judged at all: a plain session token is 272 characters and one narrowing
/// block adds about 200; anything past this is refused before it is decoded.
pub const MAX_TOKEN_LENGTH: usize = 4096;
/// Blocks a holder may append to a session token.
pub const MAX_NARROWINGS: usize = 4;

/// What an appended block may hold. Every bound keeps one evaluation to a few thousand steps.
pub struct NarrowingPolicy;

impl NarrowingPolicy {
    /// Checks in one appended block.
    pub const CHECKS: usize = 8;
    /// Alternatives (`or`) in one check.
    pub const QUERIES: usize = 4;
    /// Predicates joined in one alternative.
    pub const PREDICATES: usize = 4;
    /// Expressions in one alternative.
    pub const EXPRESSIONS: usize = 8;
    /// Operations in one expression.
    pub const OPERATIONS: usize = 32;
    /// The facts a check may read: the ones the authorizer supplies for the request.
    pub const FACTS: [&'static str; 4] = ["time", "operation", "path", "route"];
}

/// Biscuit's own bounds, a backstop behind [`NarrowingPolicy`]: vetted checks need a few facts,
/// one iteration and microseconds. The time limit is generous so that a busy machine does not
/// refuse a sound token (biscuit's 1 ms default failed under load).
const AUTHORIZER_LIMITS: AuthorizerLimits = AuthorizerLimits {
    max_facts: 64,
    max_iterations: 4,
    max_time: Duration::from_millis(20),
};

const ROOT_KEY_NAME: &str = "biscuit_root_key";

/// Plain session tokens remembered as verified (about 100 bytes each).
const VERIFIED_CAPACITY: usize = 16_384;
/// Narrowed tokens remembered as verified and vetted, bounded by their memory: each entry is
/// counted for the memory of its checks ([`Narrowed::bytes`]), and the cache keeps at most
/// 4 MiB of them (an ordinary narrowing, read-only on one route, counts under 2 KiB). A parsed
/// token was kept once, about 11 bytes per character (7 KiB for a 630-character token with one
/// appended block, measured with massif): 1,000 such tokens were 7 MiB of the server's memory
/// (BENCHMARKS.md). Bounded by count alone (4,096 entries),
/// a holder could fill it with 4,096 distinct narrowings of one session of up to
/// `MAX_TOKEN_LENGTH` characters each.
const NARROWED_MEMORY: u64 = 4 * 1024 * 1024;
/// What the cache expects to hold, for its table's size (tokens of about 600 characters).
const NARROWED_EXPECTED: usize = 2_048;
/// Narrowed tokens waiting for a judge, per judge, before a request waits for room.
const JUDGE_QUEUE: usize = 64;
/// The judges' CPU priority: on Linux nice 9 (thread-priority maps 23 of its 0–99 onto
/// niceness), about a tenth of a core's share against a request's thread at nice 0 when both
/// want it, all of it when nothing else does. Not `SCHED_IDLE`, as the password workers are: a
/// narrowed token is an ordinary request's credential, and would wait for every other request.
const JUDGE_PRIORITY: u8 = 23;
/// Cookie tokens remembered as verified (about 150 bytes each). Each authenticated browser
/// response of a new second carries a new one, which the browser sends until the next: the
/// cache needs a few seconds of every active browser session, not hours of them (0.6 MiB at
/// most; a token that fell out costs one signature check).
const COOKIE_CAPACITY: usize = 4_096;
/// Cookie tokens minted in the current second, one per session (about 450 bytes each, the
/// token included): an entry is of use for a second only (0.9 MiB at most; one that fell out
/// costs one signature).
const MINTED_CAPACITY: usize = 2_048;

/// The authority block's `purpose` of a Bearer session token.
const SESSION_PURPOSE: &str = "session";
/// The authority block's `purpose` of a browser's cookie token.
const COOKIE_PURPOSE: &str = "cookie";
/// HKDF's `info` for the CSRF key: a new version changes every CSRF value.
const CSRF_KEY_INFO: &[u8] = b"stride/csrf/v1";

pub struct TokenKeys {
    keys: KeyPair,
    public: PublicKey,
    /// SHA-256 of a plain session token that passed → what it says.
    verified: Cache<[u8; 32], Claims>,
    /// SHA-256 of a narrowed token whose signatures and blocks passed → what it says and its
    /// checks, still to be run for every request.
    narrowed: Cache<[u8; 32], (Claims, Arc<Narrowed>), NarrowedWeight>,
    /// SHA-256 of a cookie token that passed → what it says.
    cookies: Cache<[u8; 32], Claims>,
    /// (user, session, expiry) → the cookie token minted for it: the responses of one second
    /// to one session carry one token (remembered as verified when minted).
    minted_cookies: Cache<(i64, String, i64), String>,
    /// The threads that parse and run narrowed tokens.
    judges: Judges,
    /// HKDF-SHA256 of the root private key: the key of the sessions' CSRF values.
    csrf_key: [u8; 32],
}

/// Why a token was refused. The first two map to FitTrackee's messages; `Forbidden` is a valid
/// session token whose holder narrowed it so that it does not allow this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Expired,
    Invalid,
    Forbidden,
}

/// What a valid session token says, from its authority block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user_id: i64,
    pub session_id: String,
    /// Tokens minted before `expires` existed carry only the check: their session row's expiry
    /// is the same instant.
    pub expires_at: Option<i64>,
}

impl Claims {
    pub fn expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|e| now > e)
    }
}

/// A verified token: exactly as minted, or narrowed by its holder, whose checks must still be
/// run for the request ([`Narrowed::authorize`]).
#[derive(Debug)]
pub enum Verified {
    Plain(Claims),
    Narrowed(Claims, Arc<Narrowed>),
}

/// The memory a remembered narrowed token is counted for ([`NARROWED_MEMORY`]).
#[derive(Clone)]
struct NarrowedWeight;

impl quick_cache::Weighter<[u8; 32], (Claims, Arc<Narrowed>)> for NarrowedWeight {
    fn weight(&self, _: &[u8; 32], (claims, narrowed): &(Claims, Arc<Narrowed>)) -> u64 {
        let entry = std::mem::size_of::<([u8; 32], Claims, Narrowed)>() + claims.session_id.len();
        narrowed.bytes.saturating_add(entry as u64)
    }
}

/// A narrowed token whose appended blocks passed the [`NarrowingPolicy`]: every check of the
/// token, its authority block's and its holder's, as vetted. They run as the authorizer's own
/// checks on each request, which is what they mean in the token: a check of a block sees the
/// authority block's facts, the authorizer's and its own block's, and the checks here read
/// only facts the authorizer supplies (`NarrowingPolicy::FACTS`; an appended block has no facts
/// and no rules, and the authority block none of those).
#[derive(Debug)]
pub struct Narrowed {
    /// (block, check) → the check.
    checks: Vec<((u32, u32), Check)>,
    /// (block, check) of the holder's checks that read only `time`: failing only those means
    /// the narrowed token has expired.
    time_checks: Vec<(u32, u32)>,
    /// About the memory the checks take ([`checks_bytes`]): the cache's weight.
    bytes: u64,
}

/// The facts a holder's checks are run against.
pub struct RequestFacts<'a> {
    pub operation: &'a str,
    /// The request's path in one canonical spelling ([`canonical_path`]).
    pub path: &'a str,
    /// The template of the route that serves it, e.g. `/api/things/<name>/photo`.
    pub route: &'a str,
}

impl TokenKeys {
    pub fn from_hex(hex: &str) -> Result<TokenKeys, Failure> {
        let private = PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519)
            .map_err(|e| Failure::new("an Ed25519 private key", e))?;
        let mut csrf_key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(None, &private.to_bytes())
            .expand(CSRF_KEY_INFO, &mut csrf_key)
            .map_err(|e| Failure::new("deriving the CSRF key", e.to_string()))?;
        let keys = KeyPair::from(&private);
        let public = keys.public();
        Ok(TokenKeys {
            keys,
            public,
            verified: Cache::new(VERIFIED_CAPACITY),
            narrowed: Cache::with_weighter(NARROWED_EXPECTED, NARROWED_MEMORY, NarrowedWeight),
            cookies: Cache::new(COOKIE_CAPACITY),
            minted_cookies: Cache::new(MINTED_CAPACITY),
            judges: Judges::start()?,
            csrf_key,
        })
    }

    /// The configured key, or the one kept in the database, created by the first instance to
    /// start. `ON CONFLICT DO NOTHING` makes instances starting together agree on one key.
    pub async fn load(
        conn: &mut AnyConnection,
        configured: Option<&str>,
    ) -> Result<TokenKeys, Failure> {
        if let Some(hex) = configured {
            return TokenKeys::from_hex(hex).map_err(|e| Failure::new("tokens.private_key", e));
        }
        let candidate = KeyPair::new().private().to_bytes_hex();
        sqlx::query("INSERT INTO instance_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(ROOT_KEY_NAME)
            .bind(&candidate)
            .execute(&mut *conn)
            .await
            .map_err(|e| Failure::new("storing the root key", e))?;
        let stored: String = sqlx::query("SELECT value FROM instance_secrets WHERE name = $1")
            .bind(ROOT_KEY_NAME)
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| row.try_get("value"))
            .map_err(|e| Failure::new("reading the root key", e))?;
        TokenKeys::from_hex(&stored).map_err(|e| Failure::new("the stored root key", e))
    }

    /// A 32-byte key for one purpose of a module, derived from the root private key by
    /// HKDF-SHA256 with `info` naming the purpose and its version (as the CSRF key is): every
    /// instance on one database derives the same, and a new `info` gives an unrelated key.
    pub fn derive_key(&self, info: &[u8]) -> [u8; 32] {
        let mut key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(None, &self.keys.private().to_bytes())
            .expand(info, &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }

    /// The public half of the root key: what a holder needs to read a token and narrow it.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// A Bearer session token for a session that ends at `expires_at`.
    pub fn mint(
        &self,
        user_id: i64,
        session_id: &str,
        expires_at: i64,
    ) -> Result<String, TokenError> {
        self.mint_for(SESSION_PURPOSE, user_id, session_id, expires_at)
    }

    /// A browser's cookie token for a session, valid until `expires_at` (which the caller
    /// makes no later than the session's own end). One token per session and expiry second.
    pub fn mint_cookie(
        &self,
        user_id: i64,
        session_id: &str,
        expires_at: i64,
    ) -> Result<String, TokenError> {
        let key = (user_id, session_id.to_owned(), expires_at);
        if let Some(token) = self.minted_cookies.get(&key) {
            return Ok(token);
        }
        let token = self.mint_for(COOKIE_PURPOSE, user_id, session_id, expires_at)?;
        self.minted_cookies.insert(key, token.clone());
        // What this instance signed needs no signature check when it comes back.
        let claims = Claims {
            user_id,
            session_id: session_id.to_owned(),
            expires_at: Some(expires_at),
        };
        self.cookies
            .insert(Sha256::digest(token.as_bytes()).into(), claims);
        Ok(token)
    }

    fn mint_for(
        &self,
        purpose: &str,
        user_id: i64,
        session_id: &str,
        expires_at: i64,
    ) -> Result<String, TokenError> {
        let expiry = UNIX_EPOCH + Duration::from_secs(u64::try_from(expires_at).unwrap_or(0));
        biscuit!(
            r#"user({user_id}); session({session_id}); purpose({purpose}); expires({expires_at});
               check if time($t), $t <= {expiry};"#,
            user_id = user_id,
            session_id = session_id,
            purpose = purpose,
            expires_at = expires_at,
            expiry = expiry
        )
        .build(&self.keys)?
        .to_base64()
    }

    /// Checks a cookie token: its size, its one block (nothing appended, ever) and its
    /// signature, and reads what it says. Its expiry is the caller's to compare.
    pub fn verify_cookie(&self, token: &str) -> Result<Claims, Rejection> {
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(Rejection::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.cookies.get(&digest) {
            return Ok(claims);
        }
        let token = UnverifiedBiscuit::from_base64(token).map_err(|_| Rejection::Invalid)?;
        if token.block_count() != 1 {
            return Err(Rejection::Invalid);
        }
        let token = token.verify(self.public).map_err(|_| Rejection::Invalid)?;
        let claims = authority_claims(&token, COOKIE_PURPOSE)?;
        if claims.expires_at.is_none() {
            return Err(Rejection::Invalid);
        }
        self.cookies.insert(digest, claims.clone());
        Ok(claims)
    }

    /// The session's CSRF value: base64url (no padding) of HMAC-SHA256 of its id, 43
    /// characters. The same for the session's whole life and on every instance.
    pub fn csrf_value(&self, session_id: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.csrf_mac(session_id))
    }

    /// Whether `presented` is the session's CSRF value, compared in constant time (a value of
    /// another length fails).
    pub fn csrf_matches(&self, session_id: &str, presented: &str) -> bool {
        let expected = self.csrf_value(session_id);
        expected.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    fn csrf_mac(&self, session_id: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.csrf_key)
            .expect("HMAC takes a key of any length");
        mac.update(session_id.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Forgets that `token` was verified, as its session ends (a logout): the cache keeps room
    /// for the tokens still in use. Only memory: a forgotten token that comes again is checked
    /// in full, and its ended session refuses it anyway.
    pub fn forget(&self, token: &str) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.verified.remove(&digest);
        self.narrowed.remove(&digest);
    }

    /// Checks a token's size, signatures and authority block, and vets what its holder
    /// appended; runs no holder-written Datalog. A plain token is judged here (once: then it is
    /// remembered); a narrowed one is judged on the blocking pool.
    pub async fn verify(&self, token: &str) -> Result<Verified, Rejection> {
        if token.len() > MAX_TOKEN_LENGTH {
            return Err(Rejection::Invalid);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            return Ok(Verified::Plain(claims));
        }
        if let Some((claims, narrowed)) = self.narrowed.get(&digest) {
            return Ok(Verified::Narrowed(claims, narrowed));
        }
        // Decoded once, without the signatures: it costs microseconds and tells how many blocks
        // there are before any signature is checked; the signatures are checked on the decoded
        // token.
        let unverified = UnverifiedBiscuit::from_base64(token).map_err(|_| Rejection::Invalid)?;
        match unverified.block_count() {
            1 => {
                let token = unverified
                    .verify(self.public)
                    .map_err(|_| Rejection::Invalid)?;
                let claims = authority_claims(&token, SESSION_PURPOSE)?;
                if claims.expires_at.is_some() {
                    self.verified.insert(digest, claims.clone());
                }
                Ok(Verified::Plain(claims))
            }
            n if n <= 1 + MAX_NARROWINGS => {
                let (public, token) = (self.public, unverified);
                let (claims, narrowed) = self
                    .judges
                    .run(move || {
                        // The blocks are vetted before any signature is checked: a narrowing
                        // the policy refuses costs its parsing alone, not a signature per
                        // block. What passes is what the signatures then vouch for, byte for
                        // byte.
                        let narrowed = vet_narrowings(&token)?;
                        let token = token.verify(public).map_err(|_| Rejection::Invalid)?;
                        let claims = authority_claims(&token, SESSION_PURPOSE)?;
                        Ok((claims, Arc::new(narrowed)))
                    })
                    .await?;
                if claims.expires_at.is_some() {
                    self.narrowed
                        .insert(digest, (claims.clone(), Arc::clone(&narrowed)));
                }
                Ok(Verified::Narrowed(claims, narrowed))
            }
            _ => Err(Rejection::Invalid),
        }
    }

    /// Runs a narrowed token's checks for this request, on a judge's thread.
    pub async fn authorize(
        &self,
        narrowed: Arc<Narrowed>,
        facts: &RequestFacts<'_>,
    ) -> Result<(), Rejection> {
        let (operation, path, route) = (
            facts.operation.to_owned(),
            facts.path.to_owned(),
            facts.route.to_owned(),
        );
        self.judges
            .run(move || narrowed.authorize(&operation, &path, &route))
            .await
    }
}

/// **The threads that judge narrowed tokens** ([`crate::workers`], one per core): parsing a
/// token and running its checks takes microseconds to a millisecond, too long for an async
/// worker, and on tokio's blocking pool 8 to 12 threads came and went under load, each leaving
/// an allocator arena (BENCHMARKS.md, memory).
///
/// The judges run below normal priority ([`JUDGE_PRIORITY`]): a holder can send token after
/// token that fails only after its signatures are checked, and the judges then keep both cores
/// busy (4,000 refusals a second); at normal priority the other requests' p99 grew 5× on
/// SQLite and 32× on PostgreSQL, whose processes waited for the cores (BENCHMARKS.md). A
/// judgement that panics loses its own answer (refused), not its thread.
struct Judges(Workers);

impl Judges {
    fn start() -> Result<Judges, Failure> {
        Workers::start(
            "stride-judge",
            crate::workers::cores(),
            JUDGE_QUEUE,
            Priority::Lowered(JUDGE_PRIORITY),
            None,
        )
        .map(Judges)
        .map_err(|e| Failure::new("starting the token judges", e))
    }

    /// Runs `work` on a judge's thread; waits for room in the queue, then for the outcome.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Rejection> + Send + 'static,
    ) -> Result<T, Rejection> {
        // A judgement that panicked (or judges gone): refused, not a failure of the server.
        self.0.run(work).await.unwrap_or(Err(Rejection::Invalid))
    }
}

impl Narrowed {
    fn authorize(&self, operation: &str, path: &str, route: &str) -> Result<(), Rejection> {
        let now = SystemTime::now();
        let mut builder = authorizer!(
            r#"time({now}); operation({operation}); path({path}); route({route}); allow if true;"#,
            now = now,
            operation = operation,
            path = path,
            route = route
        )
        .set_limits(AUTHORIZER_LIMITS);
        for (_, check) in &self.checks {
            builder = builder
                .check(check.clone())
                .map_err(|_| Rejection::Invalid)?;
        }
        let mut authorizer = builder
            .build_unauthenticated()
            .map_err(|_| Rejection::Invalid)?;
        match authorizer.authorize() {
            Ok(_) => Ok(()),
            Err(error) => Err(self.classify(&error)),
        }
    }

    /// A failed check of block 0 is our expiry check. Failed checks of later blocks are the
    /// holder's own restrictions: when they all read only `time`, the narrowed token has simply
    /// expired; otherwise it does not allow this request. Anything else (a run limit) is not a
    /// token we accept. The checks ran as the authorizer's, numbered in [`Narrowed::checks`]'
    /// order.
    fn classify(&self, error: &TokenError) -> Rejection {
        let checks = match error {
            TokenError::FailedLogic(
                Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks },
            ) => checks,
            _ => return Rejection::Invalid,
        };
        let blocks: Vec<(u32, u32)> = checks
            .iter()
            .filter_map(|c| match c {
                FailedCheck::Authorizer(a) => usize::try_from(a.check_id)
                    .ok()
                    .and_then(|i| self.checks.get(i))
                    .map(|(id, _)| *id),
                FailedCheck::Block(_) => None,
            })
            .collect();
        if blocks.len() != checks.len() {
            Rejection::Invalid
        } else if blocks.iter().any(|(block, _)| *block == 0) {
            Rejection::Expired
        } else if blocks.is_empty() {
            Rejection::Invalid
        } else if blocks.iter().all(|b| self.time_checks.contains(b)) {
            Rejection::Expired
        } else {
            Rejection::Forbidden
        }
    }
}

/// The block's Datalog, parsed back into builder terms: how blocks are inspected without being
/// run. The source of a block is bounded by the token's length.
fn block_source(token: &Biscuit, index: usize) -> Result<BlockBuilder, Rejection> {
    parsed(token.print_block_source(index))
}

fn parsed(source: Result<String, TokenError>) -> Result<BlockBuilder, Rejection> {
    let source = source.map_err(|_| Rejection::Invalid)?;
    BlockBuilder::new()
        .code(source)
        .map_err(|_| Rejection::Invalid)
}

/// Who the token speaks for, from the authority block (signed with the root key: ours), for a
/// token of the given purpose. Each fact appears exactly once (`expires` at most once) in the
/// tokens we mint; a block with two of one is not ours.
fn authority_claims(token: &Biscuit, wanted: &str) -> Result<Claims, Rejection> {
    fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), Rejection> {
        match slot.replace(value) {
            None => Ok(()),
            Some(_) => Err(Rejection::Invalid),
        }
    }
    let authority = block_source(token, 0)?;
    let (mut user_id, mut session_id, mut expires_at, mut purpose) = (None, None, None, None);
    for fact in &authority.facts {
        let p = &fact.predicate;
        match (p.name.as_str(), p.terms.as_slice()) {
            ("user", [Term::Integer(id)]) => once(&mut user_id, *id)?,
            ("session", [Term::Str(id)]) => once(&mut session_id, id.clone())?,
            ("expires", [Term::Integer(at)]) => once(&mut expires_at, *at)?,
            ("purpose", [Term::Str(p)]) => once(&mut purpose, p.clone())?,
            _ => {}
        }
    }
    match (user_id, session_id, purpose) {
        (Some(user_id), Some(session_id), Some(purpose)) if purpose == wanted => Ok(Claims {
            user_id,
            session_id,
            expires_at,
        }),
        _ => Err(Rejection::Invalid),
    }
}

/// Checks every appended block against the [`NarrowingPolicy`]; returns the token's checks
/// as vetted (the authority block's, ours, and the holder's), and which of them read only
/// `time`.
///
/// Reads the token before its signatures are checked (the caller checks them after): nothing
/// here trusts what it reads, it only refuses.
fn vet_narrowings(token: &UnverifiedBiscuit) -> Result<Narrowed, Rejection> {
    fn id(block: usize, check: usize) -> Result<(u32, u32), Rejection> {
        match (u32::try_from(block), u32::try_from(check)) {
            (Ok(block), Ok(check)) => Ok((block, check)),
            _ => Err(Rejection::Invalid),
        }
    }
    let mut checks = Vec::new();
    for (check_id, check) in parsed(token.print_block_source(0))?
        .checks
        .into_iter()
        .enumerate()
    {
        checks.push((id(0, check_id)?, check));
    }
    let mut time_checks = Vec::new();
    // Third-party blocks (signed by another key) are not narrowings; nor are blocks that trust
    // other keys (their scopes, below). One entry per appended block.
    if token.external_public_keys().iter().any(Option::is_some) {
        return Err(Rejection::Invalid);
    }
    for index in 1..token.block_count() {
        let block = parsed(token.print_block_source(index))?;
        let plain = block.facts.is_empty()
            && block.rules.is_empty()
            && block.scopes.is_empty()
            && block.checks.len() <= NarrowingPolicy::CHECKS;
        if !plain {
            return Err(Rejection::Invalid);
        }
        for (check_id, check) in block.checks.iter().enumerate() {
            if check.queries.is_empty() || check.queries.len() > NarrowingPolicy::QUERIES {
                return Err(Rejection::Invalid);
            }
            let mut only_time = true;
            for query in &check.queries {
                let sound = query.scopes.is_empty()
                    && query.body.len() <= NarrowingPolicy::PREDICATES
                    && query.expressions.len() <= NarrowingPolicy::EXPRESSIONS
                    && query
                        .body
                        .iter()
                        .all(|p| NarrowingPolicy::FACTS.contains(&p.name.as_str()))
                    && query.expressions.iter().all(|e| simple_expression(&e.ops));
                if !sound {
                    return Err(Rejection::Invalid);
                }
                only_time &= query.body.iter().all(|p| p.name == "time");
            }
            // A `reject if` on time is a restriction too, but not an expiry.
            if only_time && check.kind != CheckKind::Reject {
                time_checks.push(id(index, check_id)?);
            }
        }
        for (check_id, check) in block.checks.into_iter().enumerate() {
            checks.push((id(index, check_id)?, check));
        }
    }
    let bytes = checks_bytes(&checks);
    Ok(Narrowed {
        checks,
        time_checks,
        bytes,
    })
}

/// About the heap and inline memory of vetted checks: every value's size, every string's and
/// list's contents, and 16 bytes of allocator bookkeeping per allocation. Bounded, as the
/// checks are, by the token's length.
fn checks_bytes(checks: &[((u32, u32), Check)]) -> u64 {
    use std::mem::size_of;
    const ALLOCATION: usize = 16;
    fn text(s: &str) -> usize {
        s.len() + ALLOCATION
    }
    fn term(t: &Term) -> usize {
        size_of::<Term>()
            + match t {
                Term::Variable(s) | Term::Str(s) | Term::Parameter(s) => text(s),
                Term::Bytes(b) => b.len() + ALLOCATION,
                // A B-tree node per few entries: counted as twice the entries.
                Term::Set(set) => 2 * set.iter().map(term).sum::<usize>() + ALLOCATION,
                Term::Array(items) => items.iter().map(term).sum::<usize>() + ALLOCATION,
                Term::Map(map) => {
                    let entries: usize = map
                        .iter()
                        .map(|(key, value)| {
                            size_of::<MapKey>()
                                + match key {
                                    MapKey::Str(s) | MapKey::Parameter(s) => text(s),
                                    MapKey::Integer(_) => 0,
                                }
                                + term(value)
                        })
                        .sum();
                    2 * entries + ALLOCATION
                }
                Term::Integer(_) | Term::Date(_) | Term::Bool(_) | Term::Null => 0,
            }
    }
    fn predicate(p: &Predicate) -> usize {
        size_of::<Predicate>() + text(&p.name) + p.terms.iter().map(term).sum::<usize>()
    }
    fn ops(list: &[Op]) -> usize {
        list.iter()
            .map(|op| {
                size_of::<Op>()
                    + match op {
                        Op::Value(t) => term(t) - size_of::<Term>(),
                        Op::Unary(Unary::Ffi(s)) | Op::Binary(Binary::Ffi(s)) => text(s),
                        Op::Closure(names, body) => {
                            names.iter().map(|n| text(n)).sum::<usize>() + ops(body)
                        }
                        Op::Unary(_) | Op::Binary(_) => 0,
                    }
            })
            .sum::<usize>()
            + ALLOCATION
    }
    fn rule(r: &Rule) -> usize {
        size_of::<Rule>()
            + predicate(&r.head)
            + r.body.iter().map(predicate).sum::<usize>()
            + r.expressions
                .iter()
                .map(|e: &Expression| size_of::<Expression>() + ops(&e.ops))
                .sum::<usize>()
            + r.scopes.len() * size_of::<biscuit_auth::builder::Scope>()
            + 3 * ALLOCATION
    }
    let total: usize = checks
        .iter()
        .map(|(_, check)| {
            size_of::<((u32, u32), Check)>()
                + check.queries.iter().map(rule).sum::<usize>()
                + ALLOCATION
        })
        .sum();
    u64::try_from(total).unwrap_or(u64::MAX)
}

/// Few operations, and none whose cost grows with its input beyond linear: no regular
/// expressions, no closures (`all`, `any`), no foreign functions.
fn simple_expression(ops: &[Op]) -> bool {
    ops.len() <= NarrowingPolicy::OPERATIONS
        && ops.iter().all(|op| match op {
            Op::Value(_) => true,
            Op::Unary(unary) => !matches!(unary, Unary::Ffi(_)),
            Op::Binary(binary) => !matches!(
                binary,
                Binary::Regex | Binary::All | Binary::Any | Binary::Ffi(_)
            ),
            Op::Closure(_, _) => false,
        })
}

/// One spelling for every path Rocket routes alike: empty segments (`//`, a trailing slash)
/// dropped, percent-encoding decoded, and a `/` inside a decoded segment written `%2F` so that
/// two different segment lists never read the same.
pub fn canonical_path<'a>(segments: impl Iterator<Item = &'a str>) -> String {
    let mut path = String::new();
    for segment in segments.filter(|s| !s.is_empty()) {
        path.push('/');
        path.push_str(&segment.replace('%', "%25").replace('/', "%2F"));
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// A token for an emailed link (a reset link, a confirmation link): 32 bytes from the OS
/// generator in URL-safe base64, given once to the user. Stored only as [`link_digest`].
pub fn link_token() -> Result<String, crate::error::Failure> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::error::Failure::new("OS randomness", e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What a link's token is stored and looked up as: its SHA-256, in hex.
pub fn link_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::macros::block;

    fn keys() -> TokenKeys {
        TokenKeys::from_hex(&KeyPair::new().private().to_bytes_hex()).expect("fresh key")
    }

    fn in_secs(s: i64) -> i64 {
        crate::db::now() + s
    }

    /// What the guard does, but the session row: verify, expiry, then the holder's checks.
    async fn judge(
        k: &TokenKeys,
        token: &str,
        operation: &str,
        path: &str,
    ) -> Result<Claims, Rejection> {
        let (claims, narrowed) = match k.verify(token).await? {
            Verified::Plain(c) => (c, None),
            Verified::Narrowed(c, n) => (c, Some(n)),
        };
        if claims.expired(crate::db::now()) {
            return Err(Rejection::Expired);
        }
        if let Some(n) = narrowed {
            let facts = RequestFacts {
                operation,
                path,
                route: path,
            };
            k.authorize(n, &facts).await?;
        }
        Ok(claims)
    }

    fn append(k: &TokenKeys, token: &str, b: BlockBuilder) -> String {
        Biscuit::from_base64(token, k.public)
            .expect("parse")
            .append(b)
            .expect("append")
            .to_base64()
            .expect("b64")
    }

    fn narrow(k: &TokenKeys, token: &str, code: &str) -> String {
        append(k, token, BlockBuilder::new().code(code).expect("datalog"))
    }

    #[tokio::test]
    async fn round_trip() {
        let k = keys();
        let expires = in_secs(60);
        let t = k.mint(42, "abc", expires).expect("mint");
        assert_eq!(
            judge(&k, &t, "read", "/api/things").await,
            Ok(Claims {
                user_id: 42,
                session_id: "abc".into(),
                expires_at: Some(expires),
            })
        );
    }

    /// A cookie token is no Bearer token and a Bearer token no cookie token, narrowed or not;
    /// a cookie token with anything appended is refused.
    #[tokio::test]
    async fn cookie_and_bearer_tokens_do_not_mix() {
        let k = keys();
        let expires = in_secs(60);
        let cookie = k.mint_cookie(42, "abc", expires).expect("mint");
        assert_eq!(
            k.verify_cookie(&cookie),
            Ok(Claims {
                user_id: 42,
                session_id: "abc".into(),
                expires_at: Some(expires),
            })
        );
        assert_eq!(
            judge(&k, &cookie, "read", "/").await,
            Err(Rejection::Invalid)
        );
        let bearer = k.mint(42, "abc", expires).expect("mint");
        assert_eq!(k.verify_cookie(&bearer), Err(Rejection::Invalid));
        let narrowed_bearer = narrow(&k, &bearer, r#"check if operation("read");"#);
        assert_eq!(k.verify_cookie(&narrowed_bearer), Err(Rejection::Invalid));
        let narrowed_cookie = narrow(&k, &cookie, r#"check if operation("read");"#);
        assert_eq!(k.verify_cookie(&narrowed_cookie), Err(Rejection::Invalid));
        assert_eq!(
            judge(&k, &narrowed_cookie, "read", "/").await,
            Err(Rejection::Invalid)
        );
        // An appended block that claims the purpose changes nothing: facts are read from the
        // authority block alone, and appended facts are refused.
        let claimed = append(&k, &bearer, block!(r#"purpose("cookie");"#));
        assert_eq!(k.verify_cookie(&claimed), Err(Rejection::Invalid));
        let other = keys().mint_cookie(42, "abc", expires).expect("mint");
        assert_eq!(k.verify_cookie(&other), Err(Rejection::Invalid));
        for garbage in ["", "x", &"A".repeat(MAX_TOKEN_LENGTH + 1)] {
            assert_eq!(k.verify_cookie(garbage), Err(Rejection::Invalid));
        }
    }

    /// An authority block with two of one fact is not one we minted.
    #[tokio::test]
    async fn authority_facts_appear_once() {
        let k = keys();
        for code in [
            r#"user(1); user(2); session("s"); purpose("session");"#,
            r#"user(1); session("s"); session("t"); purpose("session");"#,
            r#"user(1); session("s"); purpose("session"); purpose("cookie");"#,
            r#"user(1); session("s"); purpose("session"); expires(1); expires(2);"#,
        ] {
            let token = Biscuit::builder()
                .code(code)
                .expect("datalog")
                .build(&k.keys)
                .expect("build")
                .to_base64()
                .expect("b64");
            assert_eq!(
                judge(&k, &token, "read", "/").await,
                Err(Rejection::Invalid),
                "{code}"
            );
        }
    }

    /// The CSRF value: 43 characters, one per session, the same from every instance holding
    /// the root key, another under another key; compared whole.
    #[test]
    fn csrf_values() {
        let hex = KeyPair::new().private().to_bytes_hex();
        let (a, b) = (
            TokenKeys::from_hex(&hex).expect("key"),
            TokenKeys::from_hex(&hex).expect("key"),
        );
        let value = a.csrf_value("session-1");
        assert_eq!(value.len(), 43);
        assert!(value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(b.csrf_value("session-1"), value);
        assert_ne!(a.csrf_value("session-2"), value);
        assert_ne!(keys().csrf_value("session-1"), value);
        assert!(b.csrf_matches("session-1", &value));
        assert!(!b.csrf_matches("session-2", &value));
        assert!(!b.csrf_matches("session-1", &value[..42]));
        assert!(!b.csrf_matches("session-1", &format!("{value}=")));
        assert!(!b.csrf_matches("session-1", ""));
    }

    #[tokio::test]
    async fn expired_and_foreign_and_garbage() {
        let k = keys();
        let t = k.mint(1, "s", in_secs(-1)).expect("mint");
        assert_eq!(judge(&k, &t, "read", "/").await, Err(Rejection::Expired));
        let other = keys().mint(1, "s", in_secs(60)).expect("mint");
        assert_eq!(
            judge(&k, &other, "read", "/").await,
            Err(Rejection::Invalid)
        );
        for garbage in ["not-a-token", "", "====", &"A".repeat(MAX_TOKEN_LENGTH + 1)] {
            assert_eq!(
                judge(&k, garbage, "read", "/").await,
                Err(Rejection::Invalid),
                "{garbage:.20}"
            );
        }
    }

    #[tokio::test]
    async fn holder_cannot_change_identity_but_can_narrow() {
        let k = keys();
        let t = k.mint(7, "s", in_secs(60)).expect("mint");
        // Facts in an appended block are refused outright: a narrowing holds checks only.
        let forged = append(&k, &t, block!(r#"user(1); session("x");"#));
        assert_eq!(
            judge(&k, &forged, "read", "/").await,
            Err(Rejection::Invalid)
        );
        let read_only = narrow(&k, &t, r#"check if operation("read");"#);
        assert_eq!(
            judge(&k, &read_only, "read", "/api/things")
                .await
                .map(|c| c.user_id),
            Ok(7)
        );
        assert_eq!(
            judge(&k, &read_only, "write", "/api/things/edit").await,
            Err(Rejection::Forbidden)
        );
        let past = SystemTime::now() - Duration::from_secs(5);
        let narrowed = append(
            &k,
            &t,
            block!(r#"check if time($t), $t <= {past};"#, past = past),
        );
        assert_eq!(
            judge(&k, &narrowed, "read", "/").await,
            Err(Rejection::Expired)
        );
        // A time check that fails beside another restriction is a refusal, not an expiry.
        let both = narrow(&k, &narrowed, r#"check if operation("read");"#);
        assert_eq!(
            judge(&k, &both, "write", "/").await,
            Err(Rejection::Forbidden)
        );
    }

    #[tokio::test]
    async fn tokens_are_remembered_until_they_expire_and_narrowed_ones_judged_every_time() {
        let k = keys();
        let t = k.mint(7, "s", in_secs(1)).expect("mint");
        assert!(judge(&k, &t, "read", "/").await.is_ok());
        assert_eq!(k.verified.len(), 1);
        assert_eq!(judge(&k, &t, "write", "/x").await.map(|c| c.user_id), Ok(7));
        // A narrowed descendant of a remembered token is still judged in full, every time.
        let read_only = narrow(&k, &t, r#"check if operation("read");"#);
        for _ in 0..2 {
            assert_eq!(
                judge(&k, &read_only, "write", "/api/things/edit").await,
                Err(Rejection::Forbidden)
            );
            assert!(judge(&k, &read_only, "read", "/api/things").await.is_ok());
        }
        assert_eq!((k.verified.len(), k.narrowed.len()), (1, 1));
        // Remembered, it still dies on time, narrowed or not.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(judge(&k, &t, "read", "/").await, Err(Rejection::Expired));
        assert_eq!(
            judge(&k, &read_only, "read", "/").await,
            Err(Rejection::Expired)
        );
        // Nothing that failed is remembered.
        assert_eq!(
            judge(&k, "not-a-token", "read", "/").await,
            Err(Rejection::Invalid)
        );
        assert_eq!(k.verified.len(), 1);
    }

    /// A token forgotten (its session ended) leaves the caches, others stay, and it is
    /// checked in full if it comes again.
    #[tokio::test]
    async fn a_forgotten_token_leaves_the_caches() {
        let k = keys();
        let (a, b) = (
            k.mint(7, "a", in_secs(60)).expect("mint"),
            k.mint(8, "b", in_secs(60)).expect("mint"),
        );
        let narrowed = narrow(&k, &a, r#"check if operation("read");"#);
        for t in [&a, &b, &narrowed] {
            assert!(judge(&k, t, "read", "/").await.is_ok());
        }
        assert_eq!((k.verified.len(), k.narrowed.len()), (2, 1));
        k.forget(&a);
        k.forget(&narrowed);
        k.forget("not-a-token");
        assert_eq!((k.verified.len(), k.narrowed.len()), (1, 0));
        let kept: [u8; 32] = Sha256::digest(b.as_bytes()).into();
        assert!(k.verified.get(&kept).is_some());
        assert_eq!(judge(&k, &a, "read", "/").await.map(|c| c.user_id), Ok(7));
        assert_eq!(k.verified.len(), 2);
    }

    /// The narrowed tokens remembered are bounded by their memory, not their number: one
    /// session's holder narrowing it a thousand ways with the longest blocks the policy allows
    /// leaves at most `NARROWED_MEMORY` of them, and every one is still judged right.
    #[tokio::test]
    async fn remembered_narrowings_are_bounded_by_their_size() {
        let k = keys();
        let t = k.mint(7, "s", in_secs(60)).expect("mint");
        let mut longest = 0;
        for i in 0..1_000 {
            // Four blocks of eight checks: about 3,000 characters a token.
            let mut token = t.clone();
            for block in 0..4 {
                let checks: String = (0..8)
                    .map(|c| {
                        format!(
                            "check if path($p), $p.starts_with(\"/api/{i}/{block}/{c}\") \
                             or operation(\"read\");"
                        )
                    })
                    .collect();
                token = narrow(&k, &token, &checks);
            }
            longest = longest.max(token.len());
            assert!(token.len() <= MAX_TOKEN_LENGTH, "{}", token.len());
            assert!(judge(&k, &token, "read", "/x").await.is_ok());
        }
        assert!(longest > 2_500, "tokens of {longest} characters");
        let held = k.narrowed.len();
        assert!(
            k.narrowed.weight() <= NARROWED_MEMORY,
            "{}",
            k.narrowed.weight()
        );
        assert!(
            (20..1_000).contains(&held),
            "{held} narrowed tokens of about {longest} characters remembered"
        );
    }

    /// Narrowed as a client narrows a token (read-only, one route), a thousand sessions' tokens
    /// are all remembered, each counted for a fraction of its parsed token's 7 KiB, and each
    /// still judged on every request.
    #[tokio::test]
    async fn a_thousand_ordinary_narrowings_are_remembered() {
        let k = keys();
        let mut weights = Vec::new();
        for session in 0..1_000 {
            let t = k
                .mint(7, &format!("session-{session:04}"), in_secs(60))
                .expect("mint");
            let token = narrow(
                &k,
                &t,
                r#"check if operation("read"); check if route("/api/things");"#,
            );
            assert!(judge(&k, &token, "read", "/api/things").await.is_ok());
            assert_eq!(
                judge(&k, &token, "write", "/api/things").await,
                Err(Rejection::Forbidden)
            );
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some((claims, narrowed)) = k.narrowed.get(&digest) {
                weights.push(quick_cache::Weighter::weight(
                    &NarrowedWeight,
                    &[0; 32],
                    &(claims, narrowed),
                ));
            }
        }
        assert_eq!(
            (k.narrowed.len(), weights.len()),
            (1_000, 1_000),
            "{} bytes in all",
            k.narrowed.weight()
        );
        let heaviest = weights.iter().max().copied().unwrap_or(0);
        assert!(heaviest < 2_048, "{heaviest} bytes");
        assert!(
            k.narrowed.weight() < NARROWED_MEMORY,
            "{}",
            k.narrowed.weight()
        );
    }

    /// Every shape a holder could use to make judging costly is refused before it runs:
    /// derived facts, joins over facts of its own, regular expressions, closures, trust in
    /// other keys, too many blocks, checks, alternatives, predicates or operations.
    #[tokio::test]
    async fn narrowings_beyond_the_policy_are_refused_unrun() {
        let k = keys();
        let t = k.mint(7, "s", in_secs(60)).expect("mint");
        let facts: String = (0..40).map(|i| format!("n({i});")).collect();
        let many_ops = format!("check if time($t), {};", ["1 + 1 == 2"; 40].join(" && "));
        let refused = [
            // The n⁴ join of the issue: facts of its own, joined four ways.
            format!("{facts} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;"),
            // Rules that derive facts.
            "r($p) <- path($p); check if r($x);".to_owned(),
            // A regular expression, and closures.
            r#"check if path($p), $p.matches("^(a+)+$");"#.to_owned(),
            "check if path($p), [1, 2, 3].all($x -> $x > 0);".to_owned(),
            "check if path($p), [1, 2, 3].any($x -> $x > 0);".to_owned(),
            // Facts the authorizer does not supply.
            "check if user($u);".to_owned(),
            // Trust in other keys.
            "check if time($t) trusting previous;".to_owned(),
            // Too many predicates, alternatives, checks, operations.
            "check if time($a), time($b), time($c), time($d), time($e);".to_owned(),
            format!("check if {};", [r#"operation("read")"#; 5].join(" or ")),
            "check if time($t);".repeat(NarrowingPolicy::CHECKS + 1),
            many_ops,
        ];
        for code in &refused {
            let block = match BlockBuilder::new().code(code.as_str()) {
                Ok(block) => block,
                Err(e) => panic!("{code}: {e:?}"),
            };
            let narrowed = append(&k, &t, block);
            assert_eq!(
                judge(&k, &narrowed, "read", "/").await,
                Err(Rejection::Invalid),
                "{code}"
            );
        }
        // More blocks than the policy allows, each harmless.
        let mut deep = t.clone();
        for _ in 0..=MAX_NARROWINGS {
            deep = narrow(&k, &deep, r#"check if operation("read");"#);
        }
        assert_eq!(judge(&k, &deep, "read", "/").await, Err(Rejection::Invalid));
        // As many as allowed still work.
        let mut allowed = t.clone();
        for _ in 0..MAX_NARROWINGS {
            allowed = narrow(&k, &allowed, r#"check if operation("read");"#);
        }
        assert_eq!(
            judge(&k, &allowed, "read", "/").await.map(|c| c.user_id),
            Ok(7)
        );
    }

    #[test]
    fn canonical_paths() {
        let path = |p: &str| canonical_path(p.split('/'));
        assert_eq!(path("/api/things"), "/api/things");
        assert_eq!(path("/api/things/"), "/api/things");
        assert_eq!(path("//api///things"), "/api/things");
        assert_eq!(path("/"), "/");
        // A slash inside one decoded segment never reads as two segments.
        assert_eq!(canonical_path(["api", "a/b"].into_iter()), "/api/a%2Fb");
        assert_eq!(canonical_path(["api", "a%2Fb"].into_iter()), "/api/a%252Fb");
    }

    #[test]
    fn link_digests_are_sha256_hex() {
        assert_eq!(
            link_digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = link_token().expect("a token");
        assert_eq!(token.len(), 43);
        assert_ne!(token, link_token().expect("another"));
    }
}
