//! Whether and where spans are exported: a pure decision from the
//! OpenTelemetry variables (`OTEL_*`), read by [`decide`].
//!
//! Nothing set: no export. `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as
//! it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended) turns it
//! on, over OTLP/HTTP with `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
//! `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf` (the default) or
//! `http/json`. `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`
//! turn it off whatever else is set. A value pym cannot honour (`grpc`, an
//! exporter other than `otlp`, an endpoint that is not an http(s) URL) is
//! an error naming the variable: the binary stops rather than silently
//! exporting nothing. The SDK reads its own variables beside these
//! (`OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`).

use std::fmt;

pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// The encoding of OTLP/HTTP request bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`
    Protobuf,
    /// `http/json`
    Json,
}

/// Where and how to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// The full URL spans are posted to.
    pub endpoint: String,
    pub protocol: Protocol,
    /// `OTEL_SERVICE_NAME`, else the binary's name.
    pub service_name: String,
}

/// A setting pym cannot honour: the variable, its value, and what it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} cannot be used: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// The decision for a binary named `binary`, `get` reading a variable
/// (an empty value counts as unset). `Ok(None)`: no export.
pub fn decide(
    get: impl Fn(&str) -> Option<String>,
    binary: &str,
) -> Result<Option<Export>, ConfigError> {
    let get = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let bad = |variable, value: String, expected| ConfigError {
        variable,
        value,
        expected,
    };
    match get(OTEL_SDK_DISABLED).map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "true" => return Ok(None),
        Some(v) if v != "false" => return Err(bad(OTEL_SDK_DISABLED, v, "true or false")),
        _ => {}
    }
    match get(OTEL_TRACES_EXPORTER).map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "none" => return Ok(None),
        Some(v) if v != "otlp" => {
            let expected = "otlp or none (pym exports over OTLP only)";
            return Err(bad(OTEL_TRACES_EXPORTER, v, expected));
        }
        _ => {}
    }
    let endpoint = match get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) {
        Some(url) => checked_url(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, url)?,
        None => match get(OTEL_EXPORTER_OTLP_ENDPOINT) {
            Some(base) => {
                let base = checked_url(OTEL_EXPORTER_OTLP_ENDPOINT, base)?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            None => return Ok(None),
        },
    };
    let (variable, value) = match get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) {
        Some(v) => (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, Some(v)),
        None => (
            OTEL_EXPORTER_OTLP_PROTOCOL,
            get(OTEL_EXPORTER_OTLP_PROTOCOL),
        ),
    };
    let protocol = match value.as_deref() {
        None | Some("http/protobuf") => Protocol::Protobuf,
        Some("http/json") => Protocol::Json,
        Some(other) => {
            let expected = "http/protobuf or http/json (pym has no gRPC exporter)";
            return Err(bad(variable, other.to_owned(), expected));
        }
    };
    Ok(Some(Export {
        endpoint,
        protocol,
        service_name: get(OTEL_SERVICE_NAME).unwrap_or_else(|| binary.to_owned()),
    }))
}

/// `url` if it is an `http://` or `https://` URL with a host.
fn checked_url(variable: &'static str, url: String) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => Ok(url),
        _ => Err(ConfigError {
            variable,
            value: url,
            expected: "an http:// or https:// URL (e.g. http://otel-collector:4318)",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Variables set, by name.
    type Vars<'a> = &'a [(&'a str, &'a str)];

    fn run(vars: Vars<'_>) -> Result<Option<Export>, ConfigError> {
        decide(
            |k| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            },
            "hello",
        )
    }

    fn export(endpoint: &str, protocol: Protocol, name: &str) -> Option<Export> {
        Some(Export {
            endpoint: endpoint.into(),
            protocol,
            service_name: name.into(),
        })
    }

    #[test]
    fn decisions() {
        use Protocol::*;
        const BASE: &str = OTEL_EXPORTER_OTLP_ENDPOINT;
        const TRACES: &str = OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
        let c = "http://c:4318";
        let table: &[(Vars<'_>, Option<Export>)] = &[
            (&[], None),
            (&[(BASE, "")], None),
            (
                &[(BASE, c)],
                export("http://c:4318/v1/traces", Protobuf, "hello"),
            ),
            (
                &[(BASE, "http://c:4318/")],
                export("http://c:4318/v1/traces", Protobuf, "hello"),
            ),
            (
                &[(BASE, c), (TRACES, "https://t/x")],
                export("https://t/x", Protobuf, "hello"),
            ),
            (
                &[(TRACES, "http://t:1/v1/traces")],
                export("http://t:1/v1/traces", Protobuf, "hello"),
            ),
            (
                &[(BASE, c), (OTEL_EXPORTER_OTLP_PROTOCOL, "http/json")],
                export("http://c:4318/v1/traces", Json, "hello"),
            ),
            (
                &[
                    (BASE, c),
                    (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
                    (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "http/json"),
                ],
                export("http://c:4318/v1/traces", Json, "hello"),
            ),
            (
                &[(BASE, c), (OTEL_SERVICE_NAME, "svc")],
                export("http://c:4318/v1/traces", Protobuf, "svc"),
            ),
            (&[(BASE, c), (OTEL_SDK_DISABLED, "TRUE")], None),
            (
                &[(BASE, c), (OTEL_SDK_DISABLED, "false")],
                export("http://c:4318/v1/traces", Protobuf, "hello"),
            ),
            (&[(BASE, c), (OTEL_TRACES_EXPORTER, "none")], None),
            // turned off: a bad protocol beside it does not matter
            (
                &[
                    (BASE, c),
                    (OTEL_TRACES_EXPORTER, "none"),
                    (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
                ],
                None,
            ),
            (
                &[(BASE, c), (OTEL_TRACES_EXPORTER, "otlp")],
                export("http://c:4318/v1/traces", Protobuf, "hello"),
            ),
        ];
        for (vars, want) in table {
            assert_eq!(run(vars).as_ref(), Ok(want), "{vars:?}");
        }
    }

    #[test]
    fn unusable_values_name_their_variable() {
        const BASE: &str = OTEL_EXPORTER_OTLP_ENDPOINT;
        let c = "http://c:4318";
        let table: &[(Vars<'_>, &str, &str)] = &[
            (
                &[(BASE, c), (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")],
                OTEL_EXPORTER_OTLP_PROTOCOL,
                "no gRPC",
            ),
            (
                &[(BASE, c), (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "grpc")],
                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                "http/protobuf or http/json",
            ),
            (
                &[(BASE, c), (OTEL_TRACES_EXPORTER, "zipkin")],
                OTEL_TRACES_EXPORTER,
                "OTLP only",
            ),
            (
                &[(BASE, c), (OTEL_SDK_DISABLED, "yes")],
                OTEL_SDK_DISABLED,
                "true or false",
            ),
            (&[(BASE, "c:4318")], BASE, "http:// or https://"),
            (
                &[(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://")],
                OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
                "URL",
            ),
        ];
        for (vars, variable, expected) in table {
            let e = run(vars).expect_err("refused");
            assert_eq!(e.variable, *variable, "{vars:?}");
            let shown = e.to_string();
            assert!(shown.starts_with(variable), "{shown}");
            assert!(shown.contains(expected), "{shown}");
        }
    }
}
