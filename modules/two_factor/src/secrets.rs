//! The module's cryptography, in one place (docs/two-factor.md, "Storage"):
//! - TOTP secrets sealed with AES-256-GCM under a key derived from the root key, the user's id
//!   as associated data, so that a sealed secret is useless without the key and cannot be moved
//!   to another account;
//! - RFC 6238 codes (SHA-1, 6 digits, 30 s) and the time step a code belongs to;
//! - the `otpauth://` URI and its QR code (SVG);
//! - recovery codes and step tokens, stored as their SHA-256 only.

use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, TOTP};

/// HKDF's `info` for the key that seals TOTP secrets: a new version changes the key.
pub const SEAL_KEY_INFO: &[u8] = b"stride/two-factor/totp-secret/v1";

/// RFC 4226's recommended secret length: 160 bits.
pub const SECRET_LEN: usize = 20;
pub const DIGITS: usize = 6;
pub const PERIOD: u64 = 30;
/// Steps accepted either side of the server's: a phone's clock a little off still works.
pub const SKEW: i64 = 1;

pub fn random<const N: usize>() -> Result<[u8; N], kernel::error::Failure> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| kernel::error::Failure::new("OS randomness", e.to_string()))?;
    Ok(bytes)
}

fn sealing_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte AES-256 key"))
}

/// `nonce || ciphertext || tag` of `secret`, bound to `user_id`.
pub fn seal(
    key: &[u8; 32],
    user_id: i64,
    secret: &[u8],
) -> Result<Vec<u8>, kernel::error::Failure> {
    let nonce = random::<NONCE_LEN>()?;
    let mut in_out = secret.to_vec();
    sealing_key(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(user_id.to_be_bytes()),
            &mut in_out,
        )
        .map_err(|_| kernel::error::Failure::new("sealing a TOTP secret", "AES-GCM failed"))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&in_out);
    Ok(sealed)
}

/// The secret sealed for `user_id`, or None when it was not (another key, another account,
/// altered bytes).
pub fn open(key: &[u8; 32], user_id: i64, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut in_out = ciphertext.to_vec();
    let plain = sealing_key(key)
        .open_in_place(nonce, Aad::from(user_id.to_be_bytes()), &mut in_out)
        .ok()?;
    Some(plain.to_vec())
}

fn totp(secret: &[u8]) -> TOTP {
    // Skew 0: the steps either side are tried one by one, to know which one matched.
    TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 0, PERIOD, secret.to_vec())
}

/// The time step of `unix` seconds.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(PERIOD as i64)
}

/// The step, among the server's and its neighbours, whose code `code` is (compared in
/// constant time), the latest first; None when it is none of them.
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret);
    let current = step_of(now);
    let mut found = None;
    // Every candidate is computed, matched or not: the time does not tell which one matched.
    for step in (current - SKEW..=current + SKEW).rev() {
        let Ok(at) = u64::try_from(step * PERIOD as i64) else {
            continue;
        };
        if totp.check(code, at) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The secret as authenticator apps take it typed: RFC 4648 base32, no padding.
pub fn base32(secret: &[u8]) -> String {
    totp(secret).get_secret_base32()
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The Key Uri Format every authenticator app reads (Google Authenticator's wiki).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let (issuer, account) = (percent_encode(issuer), percent_encode(account));
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD}",
        base32(secret)
    )
}

/// The QR code of `text` as an SVG data URI (a few kilobytes, drawn by any browser).
pub fn qr_svg_data_uri(text: &str) -> Result<String, kernel::error::Failure> {
    use qrcodegen::{QrCode, QrCodeEcc};
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium)
        .map_err(|e| kernel::error::Failure::new("a QR code", e.to_string()))?;
    const BORDER: i32 = 4;
    let size = qr.size();
    let side = size + 2 * BORDER;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + BORDER, y + BORDER));
            }
        }
    }
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    );
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// The alphabet of recovery codes: RFC 4648 base32 in lower case (no 0/1/8/9, so no o/l/b/g
/// confusion with digits).
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A recovery code: 16 base32 characters (80 random bits), written in four groups of four.
pub fn recovery_code() -> Result<String, kernel::error::Failure> {
    let bytes = random::<16>()?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// What a recovery code is stored and looked up as: the SHA-256 of its canonical form (lower
/// case, without separators), in hex. 80 random bits need no slow hash: no one can try 2^80
/// SHA-256 digests, where a password's few bits need argon2's.
pub fn recovery_digest(code: &str) -> String {
    let canonical: String = code
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_key_and_account() {
        let key = [7u8; 32];
        let sealed = seal(&key, 42, b"a secret of twenty b").expect("seal");
        assert_eq!(
            open(&key, 42, &sealed).as_deref(),
            Some(&b"a secret of twenty b"[..])
        );
        assert_eq!(open(&key, 43, &sealed), None);
        assert_eq!(open(&[8u8; 32], 42, &sealed), None);
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert_eq!(open(&key, 42, &altered), None);
        assert_ne!(
            seal(&key, 42, b"a secret of twenty b").expect("seal"),
            sealed
        );
    }

    /// RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 here).
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
        ] {
            assert_eq!(
                matching_step(secret, code, time),
                Some(step_of(time)),
                "{time}"
            );
        }
        assert_eq!(matching_step(secret, "287082", 59 + 30), Some(1));
        assert_eq!(matching_step(secret, "287082", 59 + 60), None);
        assert_eq!(matching_step(secret, "28708", 59), None);
        assert_eq!(matching_step(secret, "2870821", 59), None);
    }

    #[test]
    fn recovery_codes_are_canonical_when_typed_loosely() {
        let code = recovery_code().expect("code");
        assert_eq!(code.len(), 19);
        assert_eq!(
            recovery_digest(&code),
            recovery_digest(&code.to_uppercase().replace('-', " "))
        );
        assert_ne!(
            recovery_digest(&code),
            recovery_digest(&recovery_code().expect("code"))
        );
    }

    #[test]
    fn otpauth_uris_and_qr_codes() {
        let uri = otpauth_uri("Stride test", "sam", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/Stride%20test:sam?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Stride%20test&algorithm=SHA1&digits=6&period=30"
        );
        assert!(qr_svg_data_uri(&uri)
            .expect("qr")
            .starts_with("data:image/svg+xml;base64,"));
    }
}
