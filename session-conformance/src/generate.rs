//! Inputs as rich as production's, shared by the scenarios, the store-level model test and the
//! linearizability check: confusable user ids, microsecond instants and boundary instants,
//! records with every field set at its bounds, long lifetimes, and ids that never existed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use session_core::time::{Duration, OffsetDateTime};
use session_core::{AppData, DeviceInfo, SessionId, SessionRecord, TokenHash, UserId};

/// One microsecond, the resolution every store keeps.
pub const MICRO: Duration = Duration::microseconds(1);

/// Suffixes that make distinct user ids from one root which a loose comparison would mix up:
/// the root itself (a prefix of all others), NFC `é` and its NFD form `e` + U+0301, a trailing
/// space, a longer id, and (see [`confusable_users`]) the upper-cased root.
const CONFUSABLE_SUFFIXES: [&str; 5] = ["", "\u{e9}", "e\u{301}", "\u{e9} ", "\u{e9}x"];

/// How many ids [`confusable_users`] returns.
pub const CONFUSABLE: usize = CONFUSABLE_SUFFIXES.len() + 1;

/// Distinct user ids built from `root` that differ only by a prefix, Unicode normalization
/// (NFC against NFD of the same text), a trailing space, or case. A store must keep them apart in
/// every method: caps, listings and revoke-all of one never reach another.
///
/// # Panics
///
/// If `root` makes an id longer than [`UserId::MAX_LEN`] or contains NUL.
#[must_use]
pub fn confusable_users(root: &str) -> [UserId; CONFUSABLE] {
    let make = |text: String| {
        #[expect(clippy::expect_used, reason = "roots are short test names")]
        UserId::new(text).expect("a valid confusable user id")
    };
    [
        make(format!("{root}{}", CONFUSABLE_SUFFIXES[0])),
        make(format!("{root}{}", CONFUSABLE_SUFFIXES[1])),
        make(format!("{root}{}", CONFUSABLE_SUFFIXES[2])),
        make(format!("{root}{}", CONFUSABLE_SUFFIXES[3])),
        make(format!("{root}{}", CONFUSABLE_SUFFIXES[4])),
        make(format!("{}\u{c9}", root.to_uppercase())),
    ]
}

/// The kinds of [`DeviceInfo`] the generators draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceForm {
    /// No field set.
    Empty,
    /// A short ASCII agent and an IPv4 address.
    Plain,
    /// Every field at its byte bound, with multi-byte characters, quotes and an IPv6 address.
    AtBounds,
    /// Only a device name with trailing spaces and an IPv4-mapped IPv6 address.
    NameOnly,
}

impl DeviceForm {
    /// Every form.
    pub const ALL: [Self; 4] = [Self::Empty, Self::Plain, Self::AtBounds, Self::NameOnly];
}

/// A device of the given form; `salt` makes the values differ between calls.
#[must_use]
pub fn device(form: DeviceForm, salt: u32) -> DeviceInfo {
    match form {
        DeviceForm::Empty => DeviceInfo::new(),
        DeviceForm::Plain => DeviceInfo::new()
            .with_user_agent(format!("agent/{salt}"))
            .with_ip(IpAddr::V4(Ipv4Addr::new(
                192,
                0,
                2,
                u8::try_from(salt % 250).unwrap_or(1),
            ))),
        DeviceForm::AtBounds => {
            // 512 bytes: a 4-byte emoji, quotes and SQL-ish text, filled up exactly.
            let head = format!("Mozilla/5.0 \u{1F600} ' \" \\ ; -- {salt} ");
            let agent = format!(
                "{head}{}",
                "a".repeat(DeviceInfo::MAX_USER_AGENT - head.len())
            );
            let name_head = format!("Téléphone {salt} ");
            let name = format!(
                "{name_head}{}",
                "z".repeat(DeviceInfo::MAX_DEVICE_NAME - name_head.len())
            );
            DeviceInfo::new()
                .with_user_agent(agent)
                .with_ip(IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0,
                    0,
                    0,
                    0,
                    u16::try_from(salt % 60_000).unwrap_or(0),
                    1,
                )))
                .with_device_name(name)
        }
        DeviceForm::NameOnly => DeviceInfo::new()
            .with_device_name(format!("name {salt}   "))
            .with_ip(IpAddr::V6(Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped())),
    }
}

/// The kinds of [`AppData`] the generators draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataForm {
    /// No data.
    None,
    /// A small object with odd spacing, escapes and astral characters, kept byte for byte.
    Awkward,
    /// A JSON string of exactly the given size in bytes.
    Sized(usize),
}

/// App data of the given form; `salt` makes the values differ between calls.
///
/// # Panics
///
/// If a [`DataForm::Sized`] size is below 16 bytes.
#[must_use]
pub fn app_data(form: DataForm, salt: u32) -> Option<AppData> {
    #[expect(clippy::expect_used, reason = "the generated texts are valid JSON")]
    match form {
        DataForm::None => None,
        DataForm::Awkward => Some(
            AppData::from_json(format!(
                "{{ \"b\" : [1, 2.50, null, {salt}],\n\t\"a\": \"\\u00e9 é 𝄞 \\\"q\\\"\", \"z\":{{}} }}"
            ))
            .expect("valid JSON"),
        ),
        DataForm::Sized(bytes) => {
            assert!(bytes >= 16, "sized app data needs at least 16 bytes");
            let head = format!("\"{salt:08} ");
            let fill = bytes - head.len() - 1;
            Some(AppData::from_json(format!("{head}{}\"", "d".repeat(fill))).expect("valid JSON"))
        }
    }
}

/// A hash made from a number, so generated histories can name their tokens.
#[must_use]
pub fn hash(n: u64) -> TokenHash {
    let mut bytes = [0_u8; 32];
    let (head, _) = bytes.split_at_mut(8);
    head.copy_from_slice(&n.to_le_bytes());
    if let Some(last) = bytes.last_mut() {
        *last = 0xa5;
    }
    TokenHash::from_bytes(bytes)
}

/// A session id of `user` that no store has seen.
#[must_use]
pub fn never_stored(user: &UserId) -> SessionId {
    SessionId::generate(user)
}

/// The shape of a generated record besides its user and creation instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordShape {
    /// Idle expiry after creation, in microseconds.
    pub idle_micros: i64,
    /// Absolute expiry after creation, in microseconds (may be years: long-lived sessions).
    pub absolute_micros: i64,
    /// A generation to start from (records imported from elsewhere), with a previous hash and a
    /// rotation instant when it is not 0.
    pub generation: u64,
    /// The device.
    pub device: DeviceForm,
    /// The app data.
    pub data: DataForm,
}

impl RecordShape {
    /// An hour idle, a day absolute, generation 0, no device, no data.
    pub const PLAIN: Self = Self {
        idle_micros: 3_600_000_000,
        absolute_micros: 86_400_000_000,
        generation: 0,
        device: DeviceForm::Empty,
        data: DataForm::None,
    };
}

/// A record of `user` created at `at` with `shape`; its token hash is [`hash`]`(token)`.
#[must_use]
pub fn record(user: &UserId, at: OffsetDateTime, shape: RecordShape, token: u64) -> SessionRecord {
    let salt = u32::try_from(token % 1_000_000).unwrap_or(0);
    let rotated = shape.generation > 0;
    SessionRecord {
        id: SessionId::generate(user),
        user_id: user.clone(),
        created_at: at,
        last_active_at: if rotated { at + MICRO } else { at },
        idle_expires_at: at + Duration::microseconds(shape.idle_micros),
        absolute_expires_at: at + Duration::microseconds(shape.absolute_micros),
        token_hash: hash(token),
        generation: shape.generation,
        previous_token_hash: rotated.then(|| hash(token ^ 0x5555_0000_0000_0000)),
        rotated_at: rotated.then_some(at + MICRO),
        revoked: None,
        device: device(shape.device, salt),
        data: app_data(shape.data, salt),
    }
}
