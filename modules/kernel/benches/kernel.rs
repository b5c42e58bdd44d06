//! Micro-benchmarks of the per-request costs the kernel controls: the session token check
//! (the whole guard path but its one database query), argon2id with the parameters Stride uses,
//! and the validators. `cargo bench -p stride-kernel`; BENCHMARKS.md compares them with the
//! load scripts' figures from the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use kernel::db::now;
use kernel::tokens::TokenKeys;
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
    // A token already verified once: its signature is remembered (tokens.rs).
    c.bench_function("token/verify (guard path without the database)", |b| {
        b.iter(|| {
            keys.verify(black_box(&token), "read", "/api/auth/profile")
                .expect("valid")
        })
    });
    // A token seen for the first time: Ed25519 signature and the Datalog authorizer.
    let mut session = 0u64;
    c.bench_function("token/verify, first time (signature + Datalog)", |b| {
        b.iter_batched(
            || {
                session += 1;
                keys.mint(42, &format!("{session:032x}"), expiry)
                    .expect("mint")
            },
            |fresh| {
                keys.verify(black_box(&fresh), "read", "/api/auth/profile")
                    .expect("valid")
            },
            criterion::BatchSize::SmallInput,
        )
    });
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
    group.bench_function("verify (one thread)", |b| {
        b.iter(|| {
            runtime
                .block_on(passwords.verify(black_box("correct-horse".into()), Some(hash.clone())))
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
