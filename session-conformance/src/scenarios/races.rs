//! Concurrency races on a multi-thread runtime, each repeated.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use session_core::{
    Error, Login, LoginRequest, Refreshed, RevokeReason, RotateOutcome, Rotation, SessionConfig,
    SessionLimit, SessionManager, SessionStore, UserId,
};

use super::store_ops::record_at;
use crate::harness::{ErrorKind, Harness, START, error_kind, login_id};

/// How many times each race is run.
pub const ROUNDS: usize = 8;
/// How many tasks race in each round.
pub const TASKS: usize = 32;

fn spawn_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<tokio::task::JoinHandle<T>>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    futures.into_iter().map(tokio::spawn).collect()
}

async fn join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    join_all(handles)
        .await
        .into_iter()
        .map(|joined| joined.expect("a racing task panicked"))
        .collect()
}

/// Logs `user` in, then refreshes its token from [`TASKS`] tasks at once. Returns the login and
/// every refresh's result.
async fn refresh_race(
    manager: &SessionManager,
    user: &UserId,
) -> (Login, Vec<Result<Refreshed, Error>>) {
    let login = manager.login(user, LoginRequest::new()).await.unwrap();
    let text = login.token.expose_secret().to_owned();
    let results = join(spawn_all((0..TASKS).map(|_| {
        let manager = manager.clone();
        let text = text.clone();
        async move { manager.refresh(&text).await }
    })))
    .await;
    (login, results)
}

/// [`TASKS`] concurrent refreshes of one token with the grace window off: exactly one wins. The
/// losers presented a token rotated a moment ago, which without a window is reuse, so the
/// session ends revoked for reuse. (The window is set to zero explicitly: with the default
/// 30 s every loser would get the winner's token, see
/// [`race_refresh_default_config_keeps_session`].)
pub async fn race_refresh_exactly_one_wins(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let manager = h.manager(Harness::config().with_reuse_grace(Duration::ZERO));
    for round in 0..ROUNDS {
        let (login, results) = refresh_race(&manager, &h.user(&format!("race-{round}"))).await;
        let results: Vec<Result<u64, Error>> = results
            .into_iter()
            .map(|r| r.map(|refreshed| refreshed.session.generation))
            .collect();
        let winners: Vec<u64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(winners, vec![1], "round {round}: exactly one refresh wins");
        for result in &results {
            let kind = error_kind(result);
            assert!(
                kind.is_none()
                    || kind == Some(ErrorKind::ReuseDetected)
                    || kind == Some(ErrorKind::Revoked(RevokeReason::ReuseDetected)),
                "round {round}: unexpected {kind:?}"
            );
        }
        assert!(
            results
                .iter()
                .any(|r| error_kind(r) == Some(ErrorKind::ReuseDetected)),
            "round {round}: some loser reported the reuse"
        );
        assert_eq!(
            error_kind(&manager.validate(&login.session.id).await),
            Some(ErrorKind::Revoked(RevokeReason::ReuseDetected))
        );
    }
}

/// Checks a refresh race in which every refresh must succeed: one token and one generation for
/// all, the session rotated exactly once and stored as answered, and the next refresh works.
async fn all_get_one_token(
    h: &Harness,
    manager: &SessionManager,
    round: usize,
    login: &Login,
    results: Vec<Result<Refreshed, Error>>,
) {
    let answers: HashSet<(String, u64)> = results
        .into_iter()
        .map(|r| {
            let refreshed = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            (
                refreshed.token.expose_secret().to_owned(),
                refreshed.session.generation,
            )
        })
        .collect();
    assert_eq!(answers.len(), 1, "round {round}: one token for everyone");
    let (token, generation) = answers.into_iter().next().unwrap();
    assert_eq!(generation, 1, "round {round}: rotated exactly once");
    let stored = h.store.find(&login.session.id).await.unwrap().unwrap();
    assert_eq!(
        stored.token_hash,
        session_core::RefreshToken::parse(&token).unwrap().hash(),
        "round {round}"
    );
    manager.validate(&login.session.id).await.unwrap();
    let next = manager.refresh(&token).await.unwrap();
    assert_eq!(next.session.generation, 2, "round {round}");
}

/// With a grace window (10 s here) and the rotation key the store keeps, all [`TASKS`]
/// concurrent refreshes of one token succeed with the winner's token; the session rotated once.
pub async fn race_refresh_with_grace_keeps_session(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let manager = h.manager(Harness::config().with_reuse_grace(Duration::from_secs(10)));
    for round in 0..ROUNDS {
        let (login, results) = refresh_race(&manager, &h.user(&format!("grace-{round}"))).await;
        all_get_one_token(&h, &manager, round, &login, results).await;
    }
}

/// With a grace window and a configured rotation key, all [`TASKS`] concurrent refreshes of one
/// token succeed and receive the same successor, the configured key's; the session rotated
/// exactly once.
pub async fn race_refresh_with_key_all_get_one_token(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let key = Harness::rotation_key();
    let manager = h.manager(
        Harness::config()
            .with_reuse_grace(Duration::from_secs(10))
            .with_rotation_key(Some(key.clone())),
    );
    for round in 0..ROUNDS {
        let (login, results) = refresh_race(&manager, &h.user(&format!("key-{round}"))).await;
        let expected = login.token.successor(&key);
        assert!(
            results.iter().all(|r| r
                .as_ref()
                .is_ok_and(|r| r.token.expose_secret() == expected.expose_secret())),
            "round {round}: everyone gets the configured key's successor"
        );
        all_get_one_token(&h, &manager, round, &login, results).await;
    }
}

/// With [`SessionConfig::default`] (only the clock is the harness's), [`TASKS`] concurrent
/// refreshes of one token, the two-tabs case, all succeed with one and the same token; the
/// session is live afterwards and the next refresh works. The tasks alternate between two
/// managers, two instances of an app sharing the store: without a configured key they agree on
/// successors only through the key the store keeps. Fresh managers every round, so each
/// round's first refreshes also read that key.
pub async fn race_refresh_default_config_keeps_session(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    for round in 0..ROUNDS {
        let instances = [
            h.manager(SessionConfig::default()),
            h.manager(SessionConfig::default()),
        ];
        let login = instances[0]
            .login(&h.user(&format!("tabs-{round}")), LoginRequest::new())
            .await
            .unwrap();
        let text = login.token.expose_secret().to_owned();
        let results = join(spawn_all((0..TASKS).map(|n| {
            let manager = instances[n % 2].clone();
            let text = text.clone();
            async move { manager.refresh(&text).await }
        })))
        .await;
        all_get_one_token(&h, &instances[round % 2], round, &login, results).await;
    }
}

/// 32 concurrent rotations on the bare store presenting one hash: exactly one `Rotated`, and the
/// stored hash is the winner's.
pub async fn race_store_rotate_exactly_one(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    for round in 0..ROUNDS {
        let record = record_at(&h.user(&format!("cas-{round}")), START);
        h.store
            .create(record.clone(), SessionLimit::UNLIMITED)
            .await
            .unwrap();
        let now = START + session_core::time::Duration::seconds(1);
        let results = join(spawn_all((0..TASKS).map(|_| {
            let store = Arc::clone(&h.store);
            let next = session_core::RefreshToken::generate(record.id)
                .unwrap()
                .hash();
            let rotation = Rotation {
                id: record.id,
                presented: record.token_hash,
                next,
                now,
                idle_expires_at: now + session_core::time::Duration::hours(1),
                device: None,
            };
            async move { (next, store.rotate(rotation).await.unwrap()) }
        })))
        .await;
        let winners: Vec<_> = results
            .iter()
            .filter(|(_, outcome)| matches!(outcome, RotateOutcome::Rotated(_)))
            .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        assert!(
            results
                .iter()
                .all(|(_, o)| !matches!(o, RotateOutcome::NotFound))
        );
        let stored = h.store.find(&record.id).await.unwrap().unwrap();
        assert_eq!(stored.token_hash, winners[0].0);
        assert_eq!(stored.generation, 1);
    }
}

/// 32 concurrent logins of one user at a cap of 5: none fails, never more than 5 live.
pub async fn race_logins_respect_cap(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let manager = h.manager(Harness::config().with_max_sessions_per_user(Some(5)));
    for round in 0..ROUNDS {
        let user = h.user(&format!("cap-{round}"));
        let watcher = {
            let manager = manager.clone();
            let user = user.clone();
            tokio::spawn(async move {
                let mut most = 0;
                for _ in 0..50 {
                    most = most.max(manager.list(&user).await.unwrap().len());
                    tokio::task::yield_now().await;
                }
                most
            })
        };
        let results = join(spawn_all((0..TASKS).map(|_| {
            let manager = manager.clone();
            let user = user.clone();
            async move { manager.login(&user, LoginRequest::new()).await }
        })))
        .await;
        let mut created = HashSet::new();
        let mut evicted = HashSet::new();
        for result in results {
            let login = result.unwrap_or_else(|e| panic!("round {round}: spurious error {e}"));
            created.insert(login.session.id);
            for id in login.evicted {
                assert!(evicted.insert(id), "round {round}: {id} evicted twice");
            }
        }
        assert_eq!(created.len(), TASKS);
        assert_eq!(evicted.len(), TASKS - 5, "round {round}");
        assert!(evicted.is_subset(&created));
        let live = manager.list(&user).await.unwrap();
        assert_eq!(live.len(), 5, "round {round}");
        assert!(live.iter().all(|s| !evicted.contains(&s.id)));
        let most = watcher.await.unwrap();
        assert!(
            most <= 5,
            "round {round}: a lister saw {most} live sessions"
        );
    }
}

/// Revoke-all racing logins: everything created before it began is revoked; the cap still holds.
pub async fn race_revoke_all_against_logins(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let manager = h.manager(Harness::config().with_max_sessions_per_user(Some(40)));
    for round in 0..ROUNDS {
        let user = h.user(&format!("wipe-{round}"));
        let mut before = Vec::new();
        for _ in 0..8 {
            before.push(login_id(&manager, &user).await);
        }
        let logins = spawn_all((0..16).map(|_| {
            let manager = manager.clone();
            let user = user.clone();
            async move {
                manager
                    .login(&user, LoginRequest::new())
                    .await
                    .map(|l| l.session.id)
            }
        }));
        let wipe = {
            let manager = manager.clone();
            let user = user.clone();
            tokio::spawn(async move { manager.logout_all(&user).await })
        };
        let during = join(logins).await;
        let wiped = wipe.await.unwrap().unwrap();
        assert!(wiped >= 8, "round {round}: revoked {wiped}");
        for id in &before {
            assert_eq!(
                error_kind(&manager.validate(id).await),
                Some(ErrorKind::Revoked(RevokeReason::LogoutAll)),
                "round {round}: a session from before the revoke-all survived"
            );
        }
        let live = manager.list(&user).await.unwrap().len();
        let created = during.iter().filter(|r| r.is_ok()).count();
        assert_eq!(created, 16, "round {round}: no login fails");
        assert!(live <= 16, "round {round}");
        assert_eq!(
            u64::try_from(8 + 16 - live).unwrap(),
            wiped,
            "round {round}"
        );
    }
}

/// Logout racing refresh and a sliding-expiry touch: a revoked session never comes back.
///
/// Even rounds race the touch and the logout alone; odd rounds add a refresh. The logout is
/// staggered by 0 to 3.5 ms across rounds so it lands before, inside and after the other calls'
/// store steps.
pub async fn race_logout_against_refresh(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let manager = h.manager(Harness::config());
    for round in 0..ROUNDS * 4 {
        let login = manager
            .login(&h.user(&format!("bye-{round}")), LoginRequest::new())
            .await
            .unwrap();
        // Past the touch interval, so the validate below writes and races the logout.
        h.advance(Duration::from_secs(61));
        let id = login.session.id;
        let text = login.token.expose_secret().to_owned();
        let toucher = {
            let manager = manager.clone();
            tokio::spawn(async move { manager.validate(&id).await.map(|_| ()) })
        };
        let refresher = (round % 2 == 1).then(|| {
            let manager = manager.clone();
            tokio::spawn(async move { manager.refresh(&text).await.map(|r| r.token) })
        });
        let delay = Duration::from_micros(500 * u64::try_from(round % 8).unwrap());
        let leaver = {
            let manager = manager.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                manager.logout(&id).await
            })
        };
        let touched = toucher.await.unwrap();
        let refreshed = match refresher {
            Some(task) => Some(task.await.unwrap()),
            None => None,
        };
        assert!(
            leaver.await.unwrap().unwrap(),
            "round {round}: logout must revoke"
        );
        let gone = Some(ErrorKind::Revoked(RevokeReason::Logout));
        assert!(touched.is_ok() || error_kind(&touched) == gone);
        assert_eq!(
            error_kind(&manager.validate(&id).await),
            gone,
            "round {round}: the session came back after its logout"
        );
        match refreshed {
            Some(Ok(token)) => assert_eq!(
                error_kind(&manager.refresh(token.expose_secret()).await),
                gone,
                "round {round}: the rotated token outlived the logout"
            ),
            Some(Err(e)) => assert_eq!(Some(ErrorKind::from(&e)), gone, "round {round}"),
            None => {}
        }
    }
}

/// 32 concurrent logins at a cap of 5 in reject mode: exactly 5 succeed, the rest are refused,
/// and nothing else is written.
pub async fn race_logins_reject_mode(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let manager = h.manager(
        Harness::config()
            .with_max_sessions_per_user(Some(5))
            .with_limit_mode(session_core::LimitMode::Reject),
    );
    for round in 0..ROUNDS {
        let user = h.user(&format!("reject-{round}"));
        let results = join(spawn_all((0..TASKS).map(|_| {
            let manager = manager.clone();
            let user = user.clone();
            async move {
                manager
                    .login(&user, LoginRequest::new())
                    .await
                    .map(|l| l.session.id)
            }
        })))
        .await;
        let created: HashSet<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(created.len(), 5, "round {round}");
        for result in &results {
            let kind = error_kind(result);
            assert!(
                kind.is_none() || kind == Some(ErrorKind::LimitReached),
                "round {round}: {kind:?}"
            );
        }
        let live: HashSet<_> = manager
            .list(&user)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(live.len(), 5, "round {round}");
        assert!(live.iter().all(|id| created.contains(id)));
    }
}

/// Concurrent creates at the bare store with a cap of 1: exactly one record stays live.
pub async fn race_store_create_cap_one(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let limit = SessionLimit::new(NonZeroU32::MIN, session_core::LimitMode::EvictOldest);
    for round in 0..ROUNDS {
        let user = h.user(&format!("one-{round}"));
        let records: Vec<_> = (0..TASKS).map(|_| record_at(&user, START)).collect();
        let results = join(spawn_all(records.iter().cloned().map(|record| {
            let store = Arc::clone(&h.store);
            async move { store.create(record, limit).await.unwrap() }
        })))
        .await;
        assert_eq!(results.len(), TASKS);
        let live = h
            .store
            .list(&user, START, std::num::NonZeroUsize::new(64).unwrap())
            .await
            .unwrap();
        assert_eq!(live.len(), 1, "round {round}");
    }
}

/// [`TASKS`] sessions of one user listed from one task while another revokes them one by one:
/// a listing never returns a session revoked before it read that session, whichever wins.
pub async fn race_list_against_logouts(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let limit = std::num::NonZeroUsize::new(TASKS).unwrap();
    for round in 0..ROUNDS {
        let user = h.user(&format!("listed-{round}"));
        let mut ids = Vec::new();
        for _ in 0..TASKS {
            let record = record_at(&user, START);
            ids.push(record.id);
            h.store
                .create(record, SessionLimit::UNLIMITED)
                .await
                .unwrap();
        }
        let revoker = {
            let store = Arc::clone(&h.store);
            tokio::spawn(async move {
                for id in ids {
                    assert!(
                        store
                            .revoke(&id, START, RevokeReason::Logout)
                            .await
                            .unwrap(),
                        "each session is revoked once"
                    );
                    tokio::task::yield_now().await;
                }
            })
        };
        // At least one listing, however fast the revoker is.
        loop {
            let done = revoker.is_finished();
            for record in h.store.list(&user, START, limit).await.unwrap() {
                assert_eq!(
                    record.revoked, None,
                    "round {round}: a revoked session was listed"
                );
            }
            if done {
                break;
            }
        }
        revoker.await.expect("the revoking task panicked");
        assert!(h.store.list(&user, START, limit).await.unwrap().is_empty());
    }
}

/// A login at a cap of 1 evicts the user's session while a logout revokes that same session:
/// one of them takes effect, and the answers agree with what is stored. The login lists the
/// session as evicted exactly when the stored reason is `evicted`; the logout returns `true`
/// exactly when it is `logout`. Run for [`TASKS`] users per round.
pub async fn race_eviction_against_logout(store: Arc<dyn SessionStore>) {
    let h = Harness::unchecked(store);
    let cap = SessionLimit::new(
        NonZeroU32::new(1).unwrap(),
        session_core::LimitMode::EvictOldest,
    );
    for round in 0..ROUNDS {
        let users: Vec<UserId> = (0..TASKS)
            .map(|n| h.user(&format!("evicted-{round}-{n}")))
            .collect();
        let mut firsts = Vec::new();
        for user in &users {
            let first = record_at(user, START);
            firsts.push(first.id);
            h.store.create(first, cap).await.unwrap();
        }
        // Each user's login and logout are spawned side by side, so they meet.
        let mut logins = Vec::new();
        let mut logouts = Vec::new();
        for (user, first) in users.iter().zip(&firsts) {
            let store = Arc::clone(&h.store);
            let second = record_at(user, START + Duration::from_secs(1));
            logins.push(tokio::spawn(async move {
                store.create(second, cap).await.unwrap()
            }));
            let store = Arc::clone(&h.store);
            let first = *first;
            logouts.push(tokio::spawn(async move {
                store
                    .revoke(&first, START, RevokeReason::Logout)
                    .await
                    .unwrap()
            }));
        }
        let (logins, logouts) = (join(logins).await, join(logouts).await);
        for ((first, login), logged_out) in firsts.iter().zip(logins).zip(logouts) {
            let session_core::CreateOutcome::Created { evicted } = login else {
                panic!("round {round}: evict mode never refuses");
            };
            let reason = h
                .store
                .find(first)
                .await
                .unwrap()
                .expect("a revoked session stays until it expires")
                .revoked
                .expect("the eviction or the logout revoked it")
                .reason;
            assert_eq!(
                evicted.contains(first),
                reason == RevokeReason::Evicted,
                "round {round}: evicted {evicted:?}, stored reason {reason:?}"
            );
            assert_eq!(
                logged_out,
                reason == RevokeReason::Logout,
                "round {round}: logout returned {logged_out}, stored reason {reason:?}"
            );
        }
    }
}
