//! The service's own keys in `pym-config.yaml` (pymacaron's
//! `get_config()`): keys prefixed `x-` (or `x_`), read typed from
//! handlers and tasks alike.
//!
//! ```yaml
//! x-welcome_text: Welcome aboard
//! x-limits: {per_day: 10}
//! ```
//!
//! ```ignore
//! let text: Option<String> = pym_runtime::config::custom("welcome_text")?;
//! #[derive(serde::Deserialize)]
//! struct Mine { welcome_text: String, limits: Limits }
//! let mine: Mine = pym_runtime::config::custom_all()?;
//! ```

use super::{Config, ConfigError};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The custom keys of one config: name (prefix removed) → as written and value.
#[derive(Debug, Clone, Default)]
pub struct Custom {
    file: String,
    keys: BTreeMap<String, (String, usize, yaml_serde::Value)>,
}

/// The name of a custom key without its prefix (`x-team` → `team`), or
/// `None` for any other key.
pub fn custom_name(key: &str) -> Option<&str> {
    key.strip_prefix("x-")
        .or_else(|| key.strip_prefix("x_"))
        .filter(|n| !n.is_empty())
}

impl Custom {
    /// The custom keys among `rest` (the keys pym does not know), from `file`;
    /// `line` gives a key's line.
    pub(super) fn of(
        file: &str,
        rest: &BTreeMap<String, yaml_serde::Value>,
        line: impl Fn(&str) -> usize,
    ) -> Self {
        let keys = rest
            .iter()
            .filter_map(|(k, v)| {
                Some((custom_name(k)?.to_string(), (k.clone(), line(k), v.clone())))
            })
            .collect();
        Custom {
            file: file.to_string(),
            keys,
        }
    }

    /// The names of the custom keys (without prefix).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The key `x-<name>` as a `T`; `None` when it is not set. A value of
    /// another shape is an error naming the file, line and key.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        let Some((key, line, value)) = self.keys.get(name) else {
            return Ok(None);
        };
        yaml_serde::from_value(value.clone())
            .map(Some)
            .map_err(|e| ConfigError::Key {
                file: self.file.clone(),
                line: *line,
                key: key.clone(),
                message: format!("expected {}: {e}", std::any::type_name::<T>()),
            })
    }

    /// Every custom key (prefixes removed) as one `T`, e.g. a struct with
    /// a field per key.
    pub fn all<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let map: yaml_serde::Mapping = self
            .keys
            .iter()
            .map(|(name, (_, _, v))| (yaml_serde::Value::String(name.clone()), v.clone()))
            .collect();
        yaml_serde::from_value(yaml_serde::Value::Mapping(map)).map_err(|e| ConfigError::Syntax {
            file: self.file.clone(),
            message: format!(
                "custom keys (x-...): expected {}: {e}",
                std::any::type_name::<T>()
            ),
        })
    }
}

static CURRENT: OnceLock<Config> = OnceLock::new();

/// Make `config` the process's config, as the binary does at start (the
/// first call wins; false if one was set already).
pub fn install(config: Config) -> bool {
    CURRENT.set(config).is_ok()
}

/// The process's config, once the binary has loaded it.
pub fn current() -> Option<&'static Config> {
    CURRENT.get()
}

fn loaded() -> Result<&'static Config, ConfigError> {
    current().ok_or_else(|| ConfigError::Syntax {
        file: "<no config>".into(),
        message: "no config is loaded yet: pym_runtime::App loads it when the binary starts \
                  (in tests, call pym_runtime::config::install)"
            .into(),
    })
}

/// The process config's custom key `x-<name>` as a `T` (see [`Custom::get`]).
pub fn custom<T: DeserializeOwned>(name: &str) -> Result<Option<T>, ConfigError> {
    loaded()?.custom.get(name)
}

/// Every custom key of the process config as one `T` (see [`Custom::all`]).
pub fn custom_all<T: DeserializeOwned>() -> Result<T, ConfigError> {
    loaded()?.custom.all()
}
