//! `admin: {enabled, port}`: the admin API and the dashboard, off by
//! default; `PYM_ADMIN_ENABLED` and `PYM_ADMIN_PORT` override the file.

use super::{ConfigError, Resolve, env_err, parse_bool};
use pym_core::contract;
use serde::Deserialize;

/// Where and whether the admin API and the dashboard are served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdminConfig {
    /// Serve `/_pym/admin/` and `/_pym/`.
    pub enabled: bool,
    /// On this port instead of the API port.
    pub port: Option<u16>,
}

/// `admin:` as written in the file.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    enabled: Option<bool>,
    port: Option<u16>,
}

impl Resolve<'_> {
    /// The admin settings: the variables, else the file, else off; a port
    /// must be neither 0 nor the API port.
    pub(super) fn admin(
        &self,
        raw: Option<RawAdmin>,
        api_port: u16,
    ) -> Result<AdminConfig, ConfigError> {
        let raw = raw.unwrap_or_default();
        let enabled = match self.var(contract::ENV_ADMIN_ENABLED, "set true or false")? {
            Some(v) => parse_bool(&v)
                .ok_or_else(|| env_err(contract::ENV_ADMIN_ENABLED, "expected true or false"))?,
            None => raw.enabled.unwrap_or(false),
        };
        let bad = |p: u16| p == 0 || p == api_port;
        let what = format!("a port number (1-65535) other than the API port {api_port}");
        let port = match self.parsed::<u16>(
            contract::ENV_ADMIN_PORT,
            "set a port number",
            "not a port number (1-65535)",
        )? {
            Some(p) if bad(p) => {
                return Err(env_err(
                    contract::ENV_ADMIN_PORT,
                    &format!("is {p}; expected {what}"),
                ));
            }
            Some(p) => Some(p),
            None => match raw.port {
                Some(p) if bad(p) => {
                    return Err(self.key_err(
                        contract::CONFIG_ADMIN,
                        format!("port is {p}; expected {what}"),
                    ));
                }
                other => other,
            },
        };
        Ok(AdminConfig { enabled, port })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(yaml: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
        let env = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_string())
        };
        Config::from_yaml("c.yaml", yaml, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn admin_settings_from_file_and_environment() {
        type Case<'a> = (
            &'a str,
            &'a [(&'a str, &'a str)],
            Option<(bool, Option<u16>)>,
            &'a str,
        );
        let cases: &[Case] = &[
            ("", &[], Some((false, None)), ""),
            ("admin: {enabled: true}\n", &[], Some((true, None)), ""),
            (
                "admin: {enabled: true, port: 9200}\n",
                &[],
                Some((true, Some(9200))),
                "",
            ),
            (
                "admin: {enabled: true}\n",
                &[("PYM_ADMIN_ENABLED", "false")],
                Some((false, None)),
                "",
            ),
            (
                "",
                &[("PYM_ADMIN_ENABLED", "true"), ("PYM_ADMIN_PORT", "9300")],
                Some((true, Some(9300))),
                "",
            ),
            (
                "",
                &[("PYM_ADMIN_ENABLED", "maybe")],
                None,
                "PYM_ADMIN_ENABLED: expected true or false",
            ),
            (
                "",
                &[("PYM_ADMIN_PORT", "8080")],
                None,
                "other than the API port 8080",
            ),
            (
                "admin: {port: 0}\n",
                &[],
                None,
                "c.yaml:1: key 'admin': port is 0",
            ),
            (
                "admin: {enabled: true, colour: red}\n",
                &[],
                None,
                "unknown field `colour`",
            ),
        ];
        for (yaml, vars, want, err) in cases {
            match (load(yaml, vars), want) {
                (Ok(c), Some((enabled, port))) => {
                    assert_eq!(
                        (c.admin.enabled, c.admin.port),
                        (*enabled, *port),
                        "{yaml} {vars:?}"
                    );
                }
                (Err(e), None) => assert!(e.contains(err), "{yaml} {vars:?}: {e}"),
                (got, _) => panic!("{yaml} {vars:?}: {:?}", got.map(|c| c.admin)),
            }
        }
    }
}
