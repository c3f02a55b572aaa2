//! Criterion benches: the token work every refresh does before it reaches a store, so the store
//! comparisons can tell it apart from the store's own cost.
//!
//! ```text
//! cargo bench -p session-benches --bench tokens
//! ```
//!
//! A refresh parses the presented token (base64, the session id, SHA-256 of the secret:
//! one compression), computes its successor (HMAC-SHA-256 under the rotation key: three
//! compressions, the key's own two computed once per key) and hashes the successor (one
//! more): the `refresh floor` row is that whole sequence.
#![expect(
    clippy::expect_used,
    reason = "a bench aborts, loudly, on a broken setup"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use session_core::{RefreshToken, RotationKey, SessionId, UserId};

fn tokens_bench(c: &mut Criterion) {
    let user = UserId::new("bench-user").expect("a short user id is valid");
    let token = RefreshToken::generate(SessionId::generate(&user)).expect("the OS RNG works");
    let text = token.expose_secret().to_owned();
    let key = RotationKey::new([7_u8; 32]).expect("a 32-byte key");
    let mut group = c.benchmark_group("token");
    group.bench_function("parse", |b| {
        b.iter(|| RefreshToken::parse(black_box(&text)).expect("a valid token"));
    });
    group.bench_function("successor", |b| {
        b.iter(|| black_box(&token).successor(black_box(&key)));
    });
    group.bench_function("refresh floor (parse, successor)", |b| {
        b.iter(|| {
            RefreshToken::parse(black_box(&text))
                .expect("a valid token")
                .successor(black_box(&key))
        });
    });
    group.bench_function("generate (OS RNG, login)", |b| {
        let id = token.session_id();
        b.iter(|| RefreshToken::generate(black_box(id)).expect("the OS RNG works"));
    });
    group.finish();
}

criterion_group!(benches, tokens_bench);
criterion_main!(benches);
