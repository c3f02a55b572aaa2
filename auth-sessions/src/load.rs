//! Configuration from a TOML file and the environment, layered with `figment`.

use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use session_core::ConfigError;

use crate::setup::SessionsConfig;
use crate::storage::StorageConfig;

/// The prefix of the environment variables read by [`SessionsConfig::load`].
pub const ENV_PREFIX: &str = "AUTH_SESSIONS_";
/// The variable naming the configuration file when none is given in code.
pub const CONFIG_FILE_VAR: &str = "AUTH_SESSIONS_CONFIG";
/// The twelve-factor variable holding the database URL.
pub const DATABASE_URL_VAR: &str = "DATABASE_URL";
/// The twelve-factor variable holding the Redis URL.
pub const REDIS_URL_VAR: &str = "REDIS_URL";

/// Why a configuration could not be loaded. Every message names where the offending value
/// came from: the environment variable, or the file and key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A source could not be read, a value has the wrong type, or a key is unknown.
    #[error("{0}")]
    Read(Box<figment::Error>),
    /// A configuration file was named but does not exist.
    #[error("configuration file `{}` does not exist", .0.display())]
    MissingFile(PathBuf),
    /// A value was read but is out of range or inconsistent.
    #[error("invalid `{key}` (set by {origin}): {error}")]
    Invalid {
        /// The configuration key (`session.idle_timeout`, `storage.url`, ...).
        key: String,
        /// Where its value came from: `environment variable AUTH_SESSIONS_...`, `TOML file ...`,
        /// or `the defaults`.
        origin: String,
        /// What is wrong with it.
        #[source]
        error: ConfigError,
    },
    /// Both `DATABASE_URL` and `REDIS_URL` are set and nothing says which store to use.
    #[error(
        "both {DATABASE_URL_VAR} and {REDIS_URL_VAR} are set and no storage type is configured: \
         set {ENV_PREFIX}STORAGE__TYPE to `database` or `redis`"
    )]
    AmbiguousStorage,
}

impl From<figment::Error> for LoadError {
    fn from(error: figment::Error) -> Self {
        Self::Read(Box::new(error))
    }
}

/// Settings that are always text, read from the environment as written even when they look
/// like a number or a boolean (`AUTH_SESSIONS_STORAGE__PASSWORD=12345`). Any other value that
/// must be text but looks like a number can be written in double quotes.
const TEXT_KEYS: [&str; 7] = [
    "url",
    "password",
    "username",
    "key_prefix",
    "table",
    "host",
    "master_name",
];

/// Environment variables under a prefix, `__` separating nested keys, whose errors name the
/// variable exactly (`AUTH_SESSIONS_SESSION__IDLE_TIMEOUT`).
struct PrefixedEnv(Env);

impl PrefixedEnv {
    fn new() -> Self {
        let ignored = CONFIG_FILE_VAR.trim_start_matches(ENV_PREFIX);
        Self(Env::prefixed(ENV_PREFIX).split("__").ignore(&[ignored]))
    }
}

impl Provider for PrefixedEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("the environment").interpolater(|_: &Profile, keys: &[&str]| {
            let name = keys.join("__").to_ascii_uppercase();
            format!("{ENV_PREFIX}{name}")
        })
    }

    /// Values are read as `figment` reads environment variables (`5` a number, `true` a
    /// boolean, `[a, b]` an array, `"…"` a string), except the settings that are always text
    /// ([`TEXT_KEYS`]: a password of digits stays a string).
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, text) in self.0.iter() {
            let leaf = key.as_str().rsplit('.').next().unwrap_or_default();
            let value = if TEXT_KEYS.contains(&leaf) {
                Value::from(text)
            } else {
                text.parse::<Value>().unwrap_or_else(|never| match never {})
            };
            if let Value::Dict(_, nested) = figment::util::nest(key.as_str(), value) {
                merge_dicts(&mut dict, nested);
            }
        }
        let mut data = Map::new();
        data.insert(Profile::Default, dict);
        Ok(data)
    }
}

/// One URL variable (`DATABASE_URL`, `REDIS_URL`) mapped onto `storage.url`, and the storage
/// type when the variable selects it.
struct UrlVar {
    var: &'static str,
    url: String,
    kind: Option<&'static str>,
}

impl Provider for UrlVar {
    fn metadata(&self) -> Metadata {
        let var = self.var;
        Metadata::named(format!("environment variable {var}"))
            .interpolater(move |_: &Profile, _: &[&str]| var.to_owned())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = Serialized::default("storage.url", &self.url).data()?;
        if let Some(kind) = self.kind {
            let with_kind = Serialized::default("storage.type", kind).data()?;
            for (profile, dict) in with_kind {
                let entry = data.entry(profile).or_default();
                merge_dicts(entry, dict);
            }
        }
        Ok(data)
    }
}

fn merge_dicts(into: &mut Dict, from: Dict) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (
                Some(figment::value::Value::Dict(_, existing)),
                figment::value::Value::Dict(_, new),
            ) => {
                merge_dicts(existing, new);
            }
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl SessionsConfig {
    /// The layered sources of [`SessionsConfig::load`], lowest precedence first:
    ///
    /// 1. the defaults;
    /// 2. the TOML file `file`, or the one named by `AUTH_SESSIONS_CONFIG` (if any);
    /// 3. `DATABASE_URL` (as `storage.url` when the storage type is `database`) and `REDIS_URL`
    ///    (when it is `redis`); with no type configured anywhere, whichever of the two is set
    ///    selects the type (both set: [`LoadError::AmbiguousStorage`]);
    /// 4. variables named `AUTH_SESSIONS_<SECTION>__<KEY>`, for instance
    ///    `AUTH_SESSIONS_SESSION__IDLE_TIMEOUT=14d`, `AUTH_SESSIONS_STORAGE__TYPE=redis`,
    ///    `AUTH_SESSIONS_STORAGE__KEY_PREFIX=auth:`, `AUTH_SESSIONS_TELEMETRY__REDACT_USER_IDS=true`.
    ///
    /// A variable's value reads as a number, a boolean, an array (`[a, b]`) or a table
    /// (`{mode = "cluster", nodes = ["10.0.0.1:7000"]}`) when it looks like one; URLs, hosts,
    /// user names, passwords, key prefixes and table names are always text. Quote any other
    /// text that looks like a number (`"0123"`).
    ///
    /// Add your own providers to the result before [`SessionsConfig::from_figment`] if you need
    /// more layers.
    ///
    /// # Errors
    ///
    /// [`LoadError::MissingFile`] when `file` (or `AUTH_SESSIONS_CONFIG`) names a missing file,
    /// [`LoadError::AmbiguousStorage`], and [`LoadError::Read`] when a source cannot be read.
    pub fn figment(file: Option<&Path>) -> Result<Figment, LoadError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| var(CONFIG_FILE_VAR).map(PathBuf::from));
        let mut base = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(LoadError::MissingFile(path));
            }
            base = base.merge(Toml::file_exact(path));
        }
        let env = PrefixedEnv::new();
        let configured_type: Option<String> = base
            .clone()
            .merge(PrefixedEnv::new())
            .extract_inner::<String>("storage.type")
            .ok();
        let database_url = var(DATABASE_URL_VAR);
        let redis_url = var(REDIS_URL_VAR);
        let url = match (configured_type.as_deref(), database_url, redis_url) {
            (Some("database"), Some(url), _) => Some(UrlVar {
                var: DATABASE_URL_VAR,
                url,
                kind: None,
            }),
            (Some("redis"), _, Some(url)) => Some(UrlVar {
                var: REDIS_URL_VAR,
                url,
                kind: None,
            }),
            (None, Some(_), Some(_)) => return Err(LoadError::AmbiguousStorage),
            (None, Some(url), None) => Some(UrlVar {
                var: DATABASE_URL_VAR,
                url,
                kind: Some("database"),
            }),
            (None, None, Some(url)) => Some(UrlVar {
                var: REDIS_URL_VAR,
                url,
                kind: Some("redis"),
            }),
            _ => None,
        };
        if let Some(url) = url {
            base = base.merge(url);
        }
        // The storage type defaults to the database, also when only other storage keys are set
        // (`AUTH_SESSIONS_STORAGE__TABLE` alone, say).
        let defaults = Figment::from(Serialized::default("storage.type", "database"));
        Ok(defaults.merge(base).merge(env))
    }

    /// Reads the configuration from `file` (or the file named by `AUTH_SESSIONS_CONFIG`) and the
    /// environment (see [`SessionsConfig::figment`]), then validates it as
    /// [`Sessions::start`](crate::Sessions::start) would.
    ///
    /// # Errors
    ///
    /// See [`LoadError`]: each names the variable, or the file and key, at fault.
    ///
    /// # Examples
    ///
    /// ```
    /// use auth_sessions::SessionsConfig;
    ///
    /// figment::Jail::expect_with(|jail| {
    ///     jail.set_env("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT", "14d");
    ///     jail.set_env("AUTH_SESSIONS_STORAGE__TYPE", "memory");
    ///     let config = SessionsConfig::load(None).map_err(|e| e.to_string())?;
    ///     assert_eq!(config.session.idle_timeout.as_secs(), 14 * 86_400);
    ///
    ///     jail.set_env("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT", "0s");
    ///     let error = SessionsConfig::load(None).unwrap_err().to_string();
    ///     assert!(error.contains("AUTH_SESSIONS_SESSION__IDLE_TIMEOUT"), "{error}");
    ///     Ok(())
    /// });
    /// ```
    pub fn load(file: Option<&Path>) -> Result<Self, LoadError> {
        Self::from_figment(&Self::figment(file)?)
    }

    /// Extracts and validates a configuration from `figment`.
    ///
    /// # Errors
    ///
    /// [`LoadError::Read`] for a value of the wrong type or an unknown key,
    /// [`LoadError::Invalid`] for a value out of range, naming its source.
    pub fn from_figment(figment: &Figment) -> Result<Self, LoadError> {
        let config: Self = figment.extract()?;
        config.validate_from(figment)?;
        Ok(config)
    }

    /// Validates every section, attributing an error to the source of the offending key.
    fn validate_from(&self, figment: &Figment) -> Result<(), LoadError> {
        let attribute = |section: &str, error: ConfigError| {
            let key = match &error {
                ConfigError::OutOfRange { field, .. } | ConfigError::ExceedsStore { field, .. } => {
                    format!("{section}.{field}")
                }
                _ if figment.contains(&format!("{section}.url")) => format!("{section}.url"),
                _ => section.to_owned(),
            };
            let origin = origin(figment, &key);
            LoadError::Invalid { key, origin, error }
        };
        self.session
            .validate()
            .map_err(|e| attribute("session", e))?;
        self.cleanup
            .config
            .validate()
            .map_err(|e| attribute("cleanup", e))?;
        self.storage
            .validate()
            .map_err(|e| attribute("storage", e))?;
        Ok(())
    }
}

/// Where the value of `key` came from, as a phrase naming the variable or file.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(metadata) => {
            let keys: Vec<&str> = key.split('.').collect();
            if metadata.name.contains("environment") {
                let name = metadata.interpolate(&Profile::Default, &keys);
                format!("environment variable {name}")
            } else if let Some(source) = &metadata.source {
                format!("{} `{source}`", metadata.name)
            } else {
                metadata.name.to_string()
            }
        }
        None => "the defaults".to_owned(),
    }
}

impl StorageConfig {
    /// Checks the settings of the selected store, when its feature is compiled in (a store
    /// whose feature is off is reported by [`connect`](crate::connect)).
    ///
    /// # Errors
    ///
    /// The store's [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
            Self::Database(settings) => settings.validate(),
            #[cfg(feature = "redis")]
            Self::Redis(settings) => settings.validate(),
            _ => Ok(()),
        }
    }
}
