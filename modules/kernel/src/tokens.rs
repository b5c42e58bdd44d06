//! Biscuit session tokens, signed with the deployment's Ed25519 root key.
//!
//! Authority block: `user(id); session(id); purpose("session"); expires(unix seconds);
//! check if time($t), $t <= expiry`. The authorizer supplies `time`, `operation` ("read" for
//! GET/HEAD, "write" otherwise) and `path`, so a holder can narrow a token offline with checks on
//! them.
//!
//! The Ed25519 signature and the Datalog run are most of an authenticated request's cost, so a
//! session token exactly as minted (one block) that passed once is remembered by its SHA-256
//! until it expires: its verdict can only change with time. Narrowed tokens are checked in full
//! every time (their checks read the request). The session's revocation is never remembered
//! here: the guard reads it from the database on every request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use biscuit_auth::error::{FailedCheck, Logic, Token as TokenError};
use biscuit_auth::macros::{authorizer, biscuit};
use biscuit_auth::{Algorithm, AuthorizerLimits, Biscuit, KeyPair, PrivateKey, PublicKey};
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

/// Biscuit's default 1 ms authorizer budget fails spuriously under load (STACK.md P5).
const AUTHORIZER_TIME: Duration = Duration::from_millis(50);

const ROOT_KEY_NAME: &str = "biscuit_root_key";

/// Plain session tokens remembered as verified (about 100 bytes each).
const VERIFIED_CAPACITY: usize = 16_384;

pub struct TokenKeys {
    keys: KeyPair,
    public: PublicKey,
    /// SHA-256 of a plain session token that passed → what it says, and its expiry.
    verified: Cache<[u8; 32], (Claims, i64)>,
}

/// Why a token was refused. The first two map to FitTrackee's messages; `Forbidden` is a valid
/// session token whose holder narrowed it so that it does not allow this request.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Expired,
    Invalid,
    Forbidden,
}

/// What a valid session token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user_id: i64,
    pub session_id: String,
}

impl TokenKeys {
    pub fn from_hex(hex: &str) -> Result<TokenKeys, String> {
        let private =
            PrivateKey::from_bytes_hex(hex, Algorithm::Ed25519).map_err(|e| e.to_string())?;
        let keys = KeyPair::from(&private);
        let public = keys.public();
        Ok(TokenKeys {
            keys,
            public,
            verified: Cache::new(VERIFIED_CAPACITY),
        })
    }

    /// The configured key, or the one kept in the database, created by the first instance to
    /// start. `ON CONFLICT DO NOTHING` makes instances starting together agree on one key.
    pub async fn load(
        conn: &mut AnyConnection,
        configured: Option<&str>,
    ) -> Result<TokenKeys, String> {
        if let Some(hex) = configured {
            return TokenKeys::from_hex(hex).map_err(|e| format!("tokens.private_key: {e}"));
        }
        let candidate = KeyPair::new().private().to_bytes_hex();
        sqlx::query("INSERT INTO instance_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(ROOT_KEY_NAME)
            .bind(&candidate)
            .execute(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        let row = sqlx::query("SELECT value FROM instance_secrets WHERE name = $1")
            .bind(ROOT_KEY_NAME)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
        let stored: String = row.try_get("value").map_err(|e| e.to_string())?;
        TokenKeys::from_hex(&stored).map_err(|e| format!("stored root key: {e}"))
    }

    pub fn mint(
        &self,
        user_id: i64,
        session_id: &str,
        expires_at: i64,
    ) -> Result<String, TokenError> {
        let expiry = UNIX_EPOCH + Duration::from_secs(u64::try_from(expires_at).unwrap_or(0));
        biscuit!(
            r#"user({user_id}); session({session_id}); purpose("session"); expires({expires_at});
               check if time($t), $t <= {expiry};"#,
            user_id = user_id,
            session_id = session_id,
            expires_at = expires_at,
            expiry = expiry
        )
        .build(&self.keys)?
        .to_base64()
    }

    /// Checks signature, expiry, purpose and the holder's own checks for this request.
    pub fn verify(&self, token: &str, operation: &str, path: &str) -> Result<Claims, Rejection> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((claims, expires_at)) = self.verified.get(&digest) {
            return if crate::db::now() <= expires_at {
                Ok(claims)
            } else {
                Err(Rejection::Expired)
            };
        }
        let token = Biscuit::from_base64(token, self.public).map_err(|_| Rejection::Invalid)?;
        let now = SystemTime::now();
        let mut authorizer = authorizer!(
            r#"time({now}); operation({operation}); path({path});
               allow if purpose("session"), user($u), session($s);"#,
            now = now,
            operation = operation,
            path = path
        )
        .set_limits(AuthorizerLimits {
            max_time: AUTHORIZER_TIME,
            ..AuthorizerLimits::default()
        })
        .build(&token)
        .map_err(|_| Rejection::Invalid)?;
        if let Err(error) = authorizer.authorize() {
            return Err(classify(&error));
        }
        // `query` sees only the authority block and the authorizer: facts a holder appended
        // cannot change the identity (STACK.md P6).
        let (user_id, session_id): (i64, String) = authorizer
            .query_exactly_one("data($u, $s) <- user($u), session($s)")
            .map_err(|_| Rejection::Invalid)?;
        let claims = Claims {
            user_id,
            session_id,
        };
        // Tokens minted before `expires` existed are simply not remembered.
        if token.block_count() == 1 {
            if let Ok((expires_at,)) = authorizer.query_exactly_one("data($e) <- expires($e)") {
                self.verified.insert(digest, (claims.clone(), expires_at));
            }
        }
        Ok(claims)
    }
}

/// A failed check in block 0 can only be our expiry check. Failed checks in later blocks are
/// the holder's own restrictions: when they are all about time, the narrowed token has simply
/// expired; otherwise it does not allow this request. A missing `purpose("session")` is not a
/// session token.
fn classify(error: &TokenError) -> Rejection {
    let checks = match error {
        TokenError::FailedLogic(
            Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks },
        ) => checks,
        _ => return Rejection::Invalid,
    };
    let blocks: Vec<_> = checks
        .iter()
        .filter_map(|c| match c {
            FailedCheck::Block(b) => Some(b),
            FailedCheck::Authorizer(_) => None,
        })
        .collect();
    if blocks.iter().any(|b| b.block_id == 0) {
        Rejection::Expired
    } else if blocks.is_empty() {
        Rejection::Invalid
    } else if blocks.iter().all(|b| b.rule.contains("time(")) {
        Rejection::Expired
    } else {
        Rejection::Forbidden
    }
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

    #[test]
    fn round_trip() {
        let k = keys();
        let t = k.mint(42, "abc", in_secs(60)).expect("mint");
        assert_eq!(
            k.verify(&t, "read", "/api/auth/profile"),
            Ok(Claims {
                user_id: 42,
                session_id: "abc".into()
            })
        );
    }

    #[test]
    fn expired_and_foreign_and_garbage() {
        let k = keys();
        let t = k.mint(1, "s", in_secs(-1)).expect("mint");
        assert_eq!(k.verify(&t, "read", "/"), Err(Rejection::Expired));
        let other = keys().mint(1, "s", in_secs(60)).expect("mint");
        assert_eq!(k.verify(&other, "read", "/"), Err(Rejection::Invalid));
        assert_eq!(
            k.verify("not-a-token", "read", "/"),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn holder_cannot_change_identity_but_can_narrow() {
        let k = keys();
        let t = Biscuit::from_base64(k.mint(7, "s", in_secs(60)).expect("mint"), k.public)
            .expect("parse");
        let forged = t
            .append(block!(r#"user(1); session("x");"#))
            .expect("append")
            .to_base64()
            .expect("b64");
        assert_eq!(k.verify(&forged, "read", "/").map(|c| c.user_id), Ok(7));
        let read_only = t
            .append(block!(r#"check if operation("read");"#))
            .expect("append")
            .to_base64()
            .expect("b64");
        assert!(k.verify(&read_only, "read", "/api/auth/profile").is_ok());
        assert_eq!(
            k.verify(&read_only, "write", "/api/auth/profile/edit"),
            Err(Rejection::Forbidden)
        );
        let past = SystemTime::now() - Duration::from_secs(5);
        let narrowed = t
            .append(block!(r#"check if time($t), $t <= {past};"#, past = past))
            .expect("append")
            .to_base64()
            .expect("b64");
        assert_eq!(k.verify(&narrowed, "read", "/"), Err(Rejection::Expired));
    }

    #[test]
    fn plain_tokens_are_remembered_until_they_expire_and_narrowed_ones_never() {
        let k = keys();
        let t = k.mint(7, "s", in_secs(1)).expect("mint");
        assert!(k.verify(&t, "read", "/").is_ok());
        assert_eq!(k.verified.len(), 1);
        assert_eq!(k.verify(&t, "write", "/x").map(|c| c.user_id), Ok(7));
        // A narrowed descendant of a remembered token is still judged in full, every time.
        let read_only = Biscuit::from_base64(&t, k.public)
            .expect("parse")
            .append(block!(r#"check if operation("read");"#))
            .expect("append")
            .to_base64()
            .expect("b64");
        for _ in 0..2 {
            assert_eq!(
                k.verify(&read_only, "write", "/api/auth/profile/edit"),
                Err(Rejection::Forbidden)
            );
            assert!(k.verify(&read_only, "read", "/api/auth/profile").is_ok());
        }
        assert_eq!(k.verified.len(), 1);
        // Remembered, it still dies on time.
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(k.verify(&t, "read", "/"), Err(Rejection::Expired));
        // Nothing that failed is remembered.
        assert_eq!(
            k.verify("not-a-token", "read", "/"),
            Err(Rejection::Invalid)
        );
        assert_eq!(k.verified.len(), 1);
    }
}
