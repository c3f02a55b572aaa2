//! The server-side code of the store: one Redis Functions library, or the same Lua as scripts.
//!
//! The Lua lives in `scripts/`: `common.lua` (the helpers) and one file per operation, each
//! defining one local function `op(KEYS, ARGV)`. The two ways to run it:
//!
//! - **Functions** (Redis 7 or later, the default): `common.lua` and every operation file make
//!   one library, loaded once with `FUNCTION LOAD REPLACE` and called with `FCALL`, so the
//!   helpers are defined once per load, not on every call. Library and function names carry a
//!   [version tag](Library::name) derived from the library's code, so stores of two versions
//!   (a rolling deploy) use distinct functions on one server; loading a library that is already
//!   there replaces it with the same code, which succeeds. On a Cluster the driver sends
//!   `FUNCTION LOAD` to every primary. When `FCALL` answers that the function does not exist
//!   (`FUNCTION FLUSH`, a failover to a server that never got the library, a new primary), the
//!   library is loaded again and the call retried once: nothing ran, so the retry is safe.
//! - **Scripts** (a server without Functions, or [`RedisConfig::use_functions`] off): each
//!   operation is `common.lua` + its file + a `return` of its function, sent by hash
//!   (`EVALSHA`); redis reloads a script by itself after `NOSCRIPT`.
//!
//! [`RedisConfig::use_functions`]: crate::RedisConfig::use_functions

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, RedisError, RedisResult, Script, ServerErrorKind, Value};
use sha2::{Digest as _, Sha256};

/// The helpers every operation uses.
const COMMON: &str = include_str!("scripts/common.lua");

/// Hex digits of the code's SHA-256 in the version tag: 48 bits, so two versions of the code
/// collide with probability about 2^-48.
const TAG_LEN: usize = 12;

/// An operation run on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LuaOp {
    /// `create.lua`.
    Create,
    /// `touch.lua`.
    Touch,
    /// `rotate.lua`.
    Rotate,
    /// `revoke.lua`.
    Revoke,
    /// `revoke_all.lua`.
    RevokeAll,
    /// `list.lua`.
    List,
}

impl LuaOp {
    /// Every operation.
    pub(crate) const ALL: [Self; 6] = [
        Self::Create,
        Self::Touch,
        Self::Rotate,
        Self::Revoke,
        Self::RevokeAll,
        Self::List,
    ];

    /// The name of its Lua function (and of its file).
    pub(crate) fn lua_name(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Touch => "touch",
            Self::Rotate => "rotate",
            Self::Revoke => "revoke",
            Self::RevokeAll => "revoke_all",
            Self::List => "list",
        }
    }

    /// Its file, which defines `local function <lua_name>(KEYS, ARGV)`.
    fn source(self) -> &'static str {
        match self {
            Self::Create => include_str!("scripts/create.lua"),
            Self::Touch => include_str!("scripts/touch.lua"),
            Self::Rotate => include_str!("scripts/rotate.lua"),
            Self::Revoke => include_str!("scripts/revoke.lua"),
            Self::RevokeAll => include_str!("scripts/revoke_all.lua"),
            Self::List => include_str!("scripts/list.lua"),
        }
    }

    /// Its item of `items`, one per operation in the order of [`LuaOp::ALL`].
    fn pick<T>(self, items: &[T; 6]) -> &T {
        let [create, touch, rotate, revoke, revoke_all, list] = items;
        match self {
            Self::Create => create,
            Self::Touch => touch,
            Self::Rotate => rotate,
            Self::Revoke => revoke,
            Self::RevokeAll => revoke_all,
            Self::List => list,
        }
    }
}

/// The keys and arguments of one call, in the order the operation's Lua reads them.
#[derive(Debug, Default)]
pub(crate) struct Call {
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Call {
    /// Appends a key (`KEYS[n]`).
    pub(crate) fn key(&mut self, key: impl redis::ToRedisArgs) -> &mut Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    /// Appends an argument (`ARGV[n]`).
    pub(crate) fn arg(&mut self, arg: impl redis::ToRedisArgs) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }
}

/// How this store runs its operations on the server, decided once when it connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `FCALL` of the Functions library.
    Functions,
    /// `EVALSHA` of one script per operation.
    Scripts,
}

/// The library's code, names and scripts, built once per store.
pub(crate) struct Library {
    name: String,
    code: String,
    functions: [String; 6],
    scripts: [Script; 6],
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `true` when `error` is the server's answer to an `FCALL` of a function it does not have.
/// Redis has no error code of its own for this (it answers `ERR Function not found`), so this
/// is the one place the store reads an error's text; nothing ran on the server.
pub(crate) fn is_function_missing(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && error
            .detail()
            .is_some_and(|detail| detail.trim() == "Function not found")
}

impl Library {
    /// Builds the library text, its version tag and the scripts. Pure: contacts nothing.
    pub(crate) fn new() -> Self {
        let mut body = String::from(COMMON);
        for op in LuaOp::ALL {
            body.push('\n');
            body.push_str(op.source());
        }
        let digest = Sha256::digest(body.as_bytes());
        let tag: String = digest
            .iter()
            .flat_map(|byte| [byte >> 4, byte & 0xf])
            .take(TAG_LEN)
            .map(|nibble| char::from_digit(u32::from(nibble), 16).unwrap_or('0'))
            .collect();
        let name = format!("auth_sessions_{tag}");
        let functions = LuaOp::ALL.map(|op| format!("{name}_{}", op.lua_name()));
        let mut code = format!("#!lua name={name}\n{body}\n");
        for (op, function) in LuaOp::ALL.iter().zip(&functions) {
            code.push_str(&format!(
                "redis.register_function('{function}', {})\n",
                op.lua_name()
            ));
        }
        let scripts = LuaOp::ALL.map(|op| {
            Script::new(&format!(
                "{COMMON}\n{}\nreturn {}(KEYS, ARGV)\n",
                op.source(),
                op.lua_name()
            ))
        });
        Self {
            name,
            code,
            functions,
            scripts,
        }
    }

    /// The library's name on the server: `auth_sessions_<tag>`, the tag being the first 12 hex
    /// digits of the SHA-256 of the library's Lua.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// `FUNCTION LOAD REPLACE <code>`: idempotent, since the name is derived from the code.
    fn load_cmd(&self) -> Cmd {
        let mut cmd = redis::cmd("FUNCTION");
        cmd.arg("LOAD").arg("REPLACE").arg(&self.code);
        cmd
    }

    /// Loads the library (on every primary of a Cluster).
    ///
    /// # Errors
    ///
    /// The driver's error: unreachable, or a server error reply (no `FUNCTION` command, not
    /// permitted, ...).
    pub(crate) async fn load_functions(&self, conn: &mut impl ConnectionLike) -> RedisResult<()> {
        self.load_cmd().query_async::<Value>(conn).await.map(drop)
    }

    /// Loads every script into the server's script cache (on every primary of a Cluster).
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub(crate) async fn load_scripts(&self, conn: &mut impl ConnectionLike) -> RedisResult<()> {
        for script in &self.scripts {
            script.load_async(conn).await?;
        }
        Ok(())
    }

    /// Runs `op` with `call`: one `FCALL` (three after the library was dropped: `FCALL`,
    /// `FUNCTION LOAD`, `FCALL`) or one `EVALSHA` (three after `NOSCRIPT`).
    ///
    /// # Errors
    ///
    /// The driver's error, or the error the operation's Lua returned.
    pub(crate) async fn invoke(
        &self,
        mode: Mode,
        conn: &mut impl ConnectionLike,
        op: LuaOp,
        call: &Call,
    ) -> RedisResult<Value> {
        match mode {
            Mode::Functions => {
                let mut fcall = redis::cmd("FCALL");
                fcall
                    .arg(self.function(op))
                    .arg(call.keys.len())
                    .arg(&call.keys)
                    .arg(&call.args);
                match fcall.query_async(conn).await {
                    Err(error) if is_function_missing(&error) => {
                        tracing::info!(library = %self.name, "the Functions library is gone from the server; loading it again");
                        self.load_functions(conn).await?;
                        fcall.query_async(conn).await
                    }
                    reply => reply,
                }
            }
            Mode::Scripts => {
                let mut invocation = self.script(op).prepare_invoke();
                for key in &call.keys {
                    invocation.key(key.as_slice());
                }
                for arg in &call.args {
                    invocation.arg(arg.as_slice());
                }
                invocation.invoke_async(conn).await
            }
        }
    }

    /// The server-side name of `op`'s function: `auth_sessions_<tag>_<op>`.
    pub(crate) fn function(&self, op: LuaOp) -> &str {
        op.pick(&self.functions).as_str()
    }

    fn script(&self, op: LuaOp) -> &Script {
        op.pick(&self.scripts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_code_tag() {
        let library = Library::new();
        let tag = library.name().strip_prefix("auth_sessions_").unwrap();
        assert_eq!(tag.len(), TAG_LEN);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(
            library
                .code
                .starts_with(&format!("#!lua name={}\n", library.name()))
        );
        for op in LuaOp::ALL {
            let function = library.function(op);
            assert_eq!(
                function,
                format!("{}_{}", library.name(), op.lua_name()),
                "{op:?}"
            );
            assert!(library.code.contains(&format!("'{function}'")));
            assert!(
                op.source()
                    .contains(&format!("local function {}(KEYS, ARGV)", op.lua_name())),
                "{op:?}"
            );
        }
        assert_eq!(Library::new().name(), library.name(), "the tag is stable");
    }

    #[test]
    fn scripts_are_distinct() {
        let library = Library::new();
        let mut hashes: Vec<&str> = library.scripts.iter().map(Script::get_hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), LuaOp::ALL.len());
    }

    #[test]
    fn a_missing_function_is_recognised() {
        let missing = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "Function not found".to_owned(),
        ));
        assert!(is_function_missing(&missing), "{missing:?}");
        let other = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "An error was signalled by the server",
            "rotate: a token hash is not 32 bytes".to_owned(),
        ));
        assert!(!is_function_missing(&other));
    }
}
