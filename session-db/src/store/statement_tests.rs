//! Checks the SQLite and MySQL statement wrappers without a database: each binds as many values
//! as its text has placeholders, and names the table quoted for its dialect.

use std::num::NonZeroU32;

use sea_orm::Statement;
use session_conformance::scenarios::record_at;
use session_core::{DeviceInfo, RevokeReason, Rotation, SessionId, TokenHash, UserId};
use time::macros::datetime;

use super::mysql::statements as mysql;
use super::sqlite::statements as sqlite;
use super::statements::{
    Find, Insert, List, Revoke, RevokeAll, SecretInsert, SecretSelect, Statements, Touch,
};
use crate::config::TableName;
use crate::dialect::Dialect;
use crate::row::NewRow;

const NOW: time::OffsetDateTime = datetime!(2030-06-15 12:34:56.789012 UTC);

fn user() -> UserId {
    UserId::new("alice").unwrap()
}

fn rotation(device: Option<DeviceInfo>) -> Rotation {
    Rotation {
        id: SessionId::generate(&user()),
        presented: TokenHash::from_bytes([1; 32]),
        next: TokenHash::from_bytes([2; 32]),
        now: NOW,
        idle_expires_at: NOW + time::Duration::hours(1),
        device,
    }
}

/// Every statement of `dialect` on the table `t_1`, by name.
fn every_statement(dialect: Dialect) -> Vec<(&'static str, Statement)> {
    let sql = Statements::new(dialect, &TableName::new("t_1").unwrap());
    let (user, record) = (user(), record_at(&user(), NOW));
    let row = NewRow::new(&record).unwrap();
    let id = &record.id;
    let ids = [*id, *id, *id];
    let reason = RevokeReason::PasswordChanged;
    let batch = NonZeroU32::new(10).unwrap();
    let mut all = vec![
        ("find", Find { id }.statement(&sql)),
        ("insert", Insert { row }.statement(&sql)),
        (
            "touch",
            Touch {
                id,
                now: NOW,
                idle_expires_at: NOW,
            }
            .statement(&sql),
        ),
        (
            "revoke",
            Revoke {
                id,
                now: NOW,
                reason,
            }
            .statement(&sql),
        ),
        (
            "revoke_all",
            RevokeAll {
                user: &user,
                keep: None,
                now: NOW,
                reason,
            }
            .statement(&sql),
        ),
        (
            "revoke_all_keep",
            RevokeAll {
                user: &user,
                keep: Some(id),
                now: NOW,
                reason,
            }
            .statement(&sql),
        ),
        (
            "list",
            List {
                user: &user,
                now: NOW,
                limit: 5,
            }
            .statement(&sql),
        ),
        (
            "secret_insert",
            SecretInsert {
                name: "k",
                value: &[1],
            }
            .statement(&sql),
        ),
        ("secret_select", SecretSelect { name: "k" }.statement(&sql)),
    ];
    for device in [None, Some(DeviceInfo::new().with_user_agent("ua"))] {
        let rotation = &rotation(device);
        all.push(match dialect {
            Dialect::MySql => (
                "rotate",
                mysql::Rotate {
                    rotation,
                    expected: 0,
                    generation: 1,
                }
                .statement(&sql),
            ),
            _ => ("rotate", sqlite::Rotate { rotation }.statement(&sql)),
        });
    }
    if dialect == Dialect::Sqlite {
        all.extend([
            (
                "insert_below_cap",
                sqlite::InsertBelowCap {
                    row,
                    now: NOW,
                    max: batch,
                }
                .statement(&sql),
            ),
            (
                "evict",
                sqlite::Evict {
                    user: &user,
                    now: NOW,
                    keep_newest: 2,
                }
                .statement(&sql),
            ),
            ("purge", sqlite::Purge { now: NOW, batch }.statement(&sql)),
        ]);
        return all;
    }
    let users = [b"alice".to_vec(), b"bob".to_vec()];
    all.extend([
        (
            "max_allowed_packet",
            mysql::MaxAllowedPacket::statement(&sql),
        ),
        ("lock_user", mysql::LockUser { user: &user }.statement(&sql)),
        (
            "over_cap",
            mysql::OverCap {
                user: &user,
                now: NOW,
                keep_newest: 2,
            }
            .statement(&sql),
        ),
        (
            "evict_ids",
            mysql::EvictIds {
                ids: &ids,
                now: NOW,
            }
            .statement(&sql),
        ),
        (
            "evicted_among",
            mysql::EvictedAmong {
                ids: &ids,
                now: NOW,
            }
            .statement(&sql),
        ),
        (
            "wait_user_lock",
            mysql::WaitUserLock { user: &user }.statement(&sql),
        ),
        (
            "purge_candidates",
            mysql::PurgeCandidates { now: NOW, batch }.statement(&sql),
        ),
        (
            "purge_ids",
            mysql::PurgeIds {
                ids: &ids,
                now: NOW,
            }
            .statement(&sql),
        ),
        (
            "drop_user_locks",
            mysql::DropUserLocks { users: &users }.statement(&sql),
        ),
    ]);
    all
}

#[test]
fn every_placeholder_has_a_value() {
    for dialect in [Dialect::Sqlite, Dialect::MySql] {
        for (name, statement) in every_statement(dialect) {
            let values = statement.values.map_or(0, |values| values.0.len());
            assert_eq!(
                statement.sql.matches('?').count(),
                values,
                "{dialect:?} {name}"
            );
            assert_eq!(
                statement.db_backend,
                dialect.backend(),
                "{dialect:?} {name}"
            );
        }
    }
}

#[test]
fn statements_name_their_table_quoted() {
    for (dialect, quote) in [(Dialect::Sqlite, '"'), (Dialect::MySql, '`')] {
        for (name, statement) in every_statement(dialect) {
            let table = match name {
                "max_allowed_packet" => continue,
                "secret_insert" | "secret_select" => "t_1_secrets",
                "lock_user" | "wait_user_lock" => "t_1_user_locks",
                _ => "t_1",
            };
            let quoted = format!("{quote}{table}{quote}");
            assert!(
                statement.sql.contains(&quoted),
                "{dialect:?} {name}: {}",
                statement.sql
            );
        }
    }
}

#[test]
fn a_text_is_the_same_from_the_cache() {
    let sql = Statements::new(Dialect::Sqlite, &TableName::new("t_1").unwrap());
    let id = SessionId::generate(&user());
    let first = Find { id: &id }.statement(&sql).sql;
    assert_eq!(Find { id: &id }.statement(&sql).sql, first);
    assert!(first.ends_with("FROM \"t_1\" WHERE id = ?"), "{first}");
}
