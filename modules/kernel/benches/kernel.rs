//! Micro-benchmarks of the per-request costs the kernel controls: the session token check
//! (the whole guard path but its one database query), argon2id with the parameters Stride uses,
//! and the validators. `cargo bench -p stride-kernel`; BENCHMARKS.md compares them with the
//! load scripts' figures from the same run.

use std::hint::black_box;

use biscuit_auth::builder::BlockBuilder;
use biscuit_auth::Biscuit;
use criterion::{criterion_group, criterion_main, Criterion};
use kernel::db::now;
use kernel::tokens::{
    NarrowingPolicy, RequestFacts, TokenKeys, Verified, MAX_NARROWINGS, MAX_TOKEN_LENGTH,
};
use kernel::validate::{account_words, Email, Password, Username};
use kernel::Passwords;

const KEY: &str = "1d5ef0da4bbda6e6ab1b4f2c4b1d3aa5e5a4d4ea3d1d5d5bfa4b2bbdf2a1c3d4";

fn tokens(c: &mut Criterion) {
    let keys = TokenKeys::from_hex(KEY).expect("key");
    let expiry = now() + 3600;
    c.bench_function("token/mint", |b| {
        b.iter(|| {
            keys.mint(
                black_box(42),
                black_box("0123456789abcdef0123456789abcdef"),
                expiry,
            )
        })
    });
    let token = keys
        .mint(42, "0123456789abcdef0123456789abcdef", expiry)
        .expect("mint");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let verify = |token: &str| {
        runtime
            .block_on(keys.verify(black_box(token)))
            .expect("valid")
    };
    // A token already verified once: its signature is remembered (tokens.rs).
    c.bench_function("token/verify (guard path without the database)", |b| {
        b.iter(|| verify(&token))
    });
    // A token seen for the first time: Ed25519 signature and its authority block read.
    let mut session = 0u64;
    c.bench_function(
        "token/verify, first time (signature + authority block)",
        |b| {
            b.iter_batched(
                || {
                    session += 1;
                    keys.mint(42, &format!("{session:032x}"), expiry)
                        .expect("mint")
                },
                |fresh| verify(&fresh),
                criterion::BatchSize::SmallInput,
            )
        },
    );
    // A browser's request (docs/browser-sessions.md): the cookie token verified (minted by this
    // instance, so remembered; another instance's is checked once, as a Bearer token is), the
    // CSRF value recomputed and compared, and the refresh's new token (one mint per session and
    // second).
    let mut second = 0i64;
    let cookie = keys
        .mint_cookie(42, "0123456789abcdef0123456789abcdef", expiry)
        .expect("mint");
    c.bench_function("cookie/verify", |b| {
        b.iter(|| keys.verify_cookie(black_box(&cookie)).expect("valid"))
    });
    let csrf = keys.csrf_value("0123456789abcdef0123456789abcdef");
    c.bench_function("cookie/CSRF check", |b| {
        b.iter(|| {
            keys.csrf_matches(
                black_box("0123456789abcdef0123456789abcdef"),
                black_box(&csrf),
            )
        })
    });
    c.bench_function("cookie/refresh (mint for a new second)", |b| {
        b.iter(|| {
            second += 1;
            keys.mint_cookie(42, "0123456789abcdef0123456789abcdef", expiry + second)
        })
    });
    // The costliest narrowing the policy lets through (every block at its limits), judged in
    // full: the bound on what any holder can make one request cost.
    let worst = costliest_narrowing(&keys, &token);
    let facts = RequestFacts {
        operation: "read",
        path: "/api/auth/profile",
        route: "/api/auth/profile",
    };
    c.bench_function("token/judge the costliest narrowing allowed", |b| {
        b.iter(|| {
            runtime.block_on(async {
                if let Ok(Verified::Narrowed(_, narrowed)) = keys.verify(black_box(&worst)).await {
                    let _ = keys.authorize(narrowed, &facts).await;
                }
            })
        })
    });
    // The issue's attack: a check joining facts of its own four ways. Refused unrun.
    let join: String = (0..60).map(|i| format!("n({i});")).collect();
    let attack = Biscuit::from_base64(&token, keys.public_key())
        .expect("parse")
        .append(
            BlockBuilder::new()
                .code(format!(
                    "{join} check if n($a), n($b), n($c), n($d), $a + $b + $c + $d < 0;"
                ))
                .expect("datalog"),
        )
        .expect("append")
        .to_base64()
        .expect("b64");
    c.bench_function("token/refuse a four-way join over appended facts", |b| {
        b.iter(|| runtime.block_on(keys.verify(black_box(&attack))).is_err())
    });
}

/// A token with as many blocks, checks, alternatives and predicates as allowed, within the
/// length limit.
fn costliest_narrowing(keys: &TokenKeys, token: &str) -> String {
    let query = r#"time($t), operation($o), path($p), route($r), $p.starts_with("/api") || $r.contains("x") || $o == "read""#;
    let check = format!(
        "check if {};",
        [query; NarrowingPolicy::QUERIES].join(" or ")
    );
    let mut narrowed = token.to_owned();
    for _ in 0..MAX_NARROWINGS {
        let mut checks = NarrowingPolicy::CHECKS;
        loop {
            let block = BlockBuilder::new()
                .code(check.repeat(checks))
                .expect("datalog");
            let next = Biscuit::from_base64(&narrowed, keys.public_key())
                .expect("parse")
                .append(block)
                .expect("append")
                .to_base64()
                .expect("b64");
            if next.len() <= MAX_TOKEN_LENGTH || checks == 1 {
                if next.len() <= MAX_TOKEN_LENGTH {
                    narrowed = next;
                }
                break;
            }
            checks -= 1;
        }
    }
    narrowed
}

fn passwords(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let passwords = runtime.block_on(Passwords::new()).expect("hasher");
    let hash = runtime
        .block_on(passwords.hash("correct-horse".into()))
        .expect("hash");
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| runtime.block_on(passwords.hash(black_box("correct-horse".into()))))
    });
    // What a login waits for: one verification, its lanes computed at once on the lanes' pool.
    group.bench_function("verify (one hash, its lanes at once)", |b| {
        b.iter(|| {
            runtime
                .block_on(passwords.verify(black_box("correct-horse".into()), Some(hash.clone())))
        })
    });
    // What one verification costs in CPU: the same hash, every lane on one thread (the crate's
    // own API on a pool of one thread). The login ceiling in BENCHMARKS.md is cores ÷ this.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("one thread");
    let phc = argon2::password_hash::phc::PasswordHash::new(&hash).expect("our PHC string");
    let params = argon2::Params::try_from(&phc).expect("our parameters");
    let salt = phc.salt.expect("a salt");
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    group.bench_function("verify (one thread)", |b| {
        b.iter(|| {
            one_thread.install(|| {
                let mut out = [0u8; 32];
                argon2
                    .hash_password_into(black_box(b"correct-horse"), salt.as_ref(), &mut out)
                    .expect("hash");
                out
            })
        })
    });
    // What the machine gives when every core hashes at once: one iteration is `cores`
    // verifications started together. Cores that share caches, memory bandwidth or a physical
    // core (SMT) make this less than cores × the one-thread rate.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let shared = std::sync::Arc::new(passwords);
    group.bench_function(format!("verify ({cores} in parallel, per batch)"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let batch: Vec<_> = (0..cores)
                    .map(|_| {
                        let (passwords, hash) = (shared.clone(), hash.clone());
                        tokio::spawn(async move {
                            passwords.verify("correct-horse".into(), Some(hash)).await
                        })
                    })
                    .collect();
                for verification in batch {
                    let _ = verification.await;
                }
            })
        })
    });
    group.finish();
}

fn validators(c: &mut Criterion) {
    c.bench_function("validate/username", |b| {
        b.iter(|| Username::parse(black_box("sam_runs_42")))
    });
    c.bench_function("validate/email", |b| {
        b.iter(|| Email::parse(black_box("first.last@sub.example.org")))
    });
    c.bench_function("validate/password", |b| {
        b.iter(|| Password::parse(black_box("correct-horse"), black_box("correct-horse"), 8))
    });
    // zxcvbn: a usual passphrase, and the worst case, 128 random characters.
    let words = account_words("sam", "sam@example.com");
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    for (name, raw) in [
        ("passphrase", "correct-horse".to_owned()),
        ("128 random", "ZO5c+DYaUxhgMObr2oLupbq5AE8f1wwUl4nN0JODj9gX19w5lWgfYtIl53TieYZw1CwBNfWaKIbKEdQ/RZl0ZraXwFhpgm93DjtaZ23RVLFTu2vfMykz6XNrFmZsfGR".to_owned()),
    ] {
        let password = Password::parse(&raw, &raw, 8).expect("valid");
        c.bench_function(&format!("validate/strength {name}"), |b| {
            b.iter(|| black_box(&password).strength(black_box(&words)))
        });
    }
}

criterion_group!(benches, tokens, passwords, validators);
criterion_main!(benches);
