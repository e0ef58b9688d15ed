//! What `pym new` writes, as pure functions: the service name rule and the
//! files of a new service, rendered from the templates in `cli/template`.

use heck::ToSnakeCase;
use pym_core::contract::SERVICE_NAME_MAX_LEN;

/// Where the new service's `pym-runtime` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PymSource {
    /// A pym checkout's `runtime/` directory (a path dependency).
    Path(String),
    /// A version from the crates registry.
    Version(String),
}

impl PymSource {
    /// The dependency as a TOML value, with `features` when given.
    fn toml(&self, features: &[&str]) -> String {
        let features = match features {
            [] => String::new(),
            fs => {
                let quoted: Vec<String> = fs.iter().map(|f| format!("{f:?}")).collect();
                format!(", features = [{}]", quoted.join(", "))
            }
        };
        match self {
            PymSource::Path(p) => format!("{{ path = {p:?}{features} }}"),
            PymSource::Version(v) if features.is_empty() => format!("{v:?}"),
            PymSource::Version(v) => format!("{{ version = {v:?}{features} }}"),
        }
    }
}

/// Names a service cannot take: Rust keywords and crates its code or the
/// toolchain already use under that name.
const RESERVED: &[&str] = &[
    "alloc",
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "proc-macro",
    "pub",
    "pym",
    "pym-runtime",
    "ref",
    "return",
    "self",
    "serde",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "tokio",
    "tracing",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "yield",
];

/// Check a service name: it becomes the crate, the binary, the API title
/// and the PymService's `metadata.name`, so it must suit all four.
pub fn check_name(name: &str) -> Result<(), String> {
    let rule = format!(
        "a service name is 1 to {SERVICE_NAME_MAX_LEN} of a-z, 0-9 and '-', starting with a \
         letter and not ending with '-' (it names the crate, the binary and the Kubernetes objects)"
    );
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = name.starts_with(|c: char| c.is_ascii_lowercase());
    if name.is_empty() || !chars_ok || !starts || name.ends_with('-') {
        return Err(format!("{name:?}: {rule}"));
    }
    if name.len() > SERVICE_NAME_MAX_LEN {
        return Err(format!("{name:?} has {} characters: {rule}", name.len()));
    }
    if RESERVED.contains(&name) {
        return Err(format!(
            "{name:?} is a Rust keyword or a crate the service depends on: choose another name"
        ));
    }
    Ok(())
}

/// The template files, by path in the new service (`gitignore` and
/// `dockerignore` are stored without their dot, `Cargo.toml` as `.tmpl`, so
/// that neither git nor cargo treats them as the pym checkout's own).
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("../template/Cargo.toml.tmpl")),
    ("openapi.yaml", include_str!("../template/openapi.yaml")),
    (
        "pym-config.yaml",
        include_str!("../template/pym-config.yaml"),
    ),
    ("src/lib.rs", include_str!("../template/src/lib.rs")),
    ("src/main.rs", include_str!("../template/src/main.rs")),
    ("tests/api.rs", include_str!("../template/tests/api.rs")),
    ("Dockerfile", include_str!("../template/Dockerfile")),
    (
        "pymservice.yaml",
        include_str!("../template/pymservice.yaml"),
    ),
    ("README.md", include_str!("../template/README.md")),
    (".gitignore", include_str!("../template/gitignore")),
    (".dockerignore", include_str!("../template/dockerignore")),
];

/// The files of the service `name` (checked with [`check_name`] first), as
/// (path relative to the service's directory, content).
pub fn render(name: &str, pym: &PymSource) -> Vec<(&'static str, String)> {
    let vars = [
        ("{{name}}", name.to_string()),
        ("{{crate}}", name.to_snake_case()),
        ("{{Camel}}", pym_codegen::title_camel(name)),
        ("{{pym_dep}}", pym.toml(&[])),
        ("{{pym_dep_testing}}", pym.toml(&["testing"])),
    ];
    TEMPLATES
        .iter()
        .map(|(path, text)| {
            let out = vars
                .iter()
                .fold(text.to_string(), |t, (k, v)| t.replace(k, v));
            (*path, out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names() {
        let long = "a".repeat(SERVICE_NAME_MAX_LEN);
        let too_long = "a".repeat(SERVICE_NAME_MAX_LEN + 1);
        let valid = ["demo", "my-service", "svc2", "a", long.as_str()];
        for n in valid {
            assert_eq!(check_name(n), Ok(()), "{n}");
        }
        let invalid = [
            ("", "starting with a letter"),
            ("Demo", "a-z"),
            ("my_service", "a-z"),
            ("2fast", "starting with a letter"),
            ("-x", "starting with a letter"),
            ("x-", "not ending with '-'"),
            ("my service", "a-z"),
            (too_long.as_str(), "41 characters"),
            ("type", "Rust keyword"),
            ("pym-runtime", "crate the service depends on"),
        ];
        for (n, why) in invalid {
            let e = check_name(n).expect_err(n);
            assert!(e.contains(why), "{n}: {e}");
        }
    }

    #[test]
    fn dependency_lines() {
        let path = PymSource::Path("/src/pym/runtime".into());
        assert_eq!(path.toml(&[]), r#"{ path = "/src/pym/runtime" }"#);
        assert_eq!(
            path.toml(&["testing"]),
            r#"{ path = "/src/pym/runtime", features = ["testing"] }"#
        );
        let v = PymSource::Version("0.1.0".into());
        assert_eq!(v.toml(&[]), r#""0.1.0""#);
        assert_eq!(
            v.toml(&["testing"]),
            r#"{ version = "0.1.0", features = ["testing"] }"#
        );
    }

    #[test]
    fn every_placeholder_is_filled() {
        let files = render("my-shop", &PymSource::Version("0.1.0".into()));
        assert_eq!(files.len(), TEMPLATES.len());
        for (path, text) in &files {
            assert!(!text.contains("{{"), "{path} keeps a placeholder");
        }
        let get = |p: &str| &files.iter().find(|(q, _)| *q == p).unwrap().1;
        assert!(get("Cargo.toml").contains("name = \"my-shop\""));
        assert!(get("src/main.rs").contains("my_shop::app()"));
        assert!(get("src/lib.rs").contains("impl MyShopApi for MyShopService"));
        assert!(get("tests/api.rs").contains("CARGO_BIN_EXE_my-shop"));
        assert!(get("openapi.yaml").contains("title: my-shop"));
    }

    #[test]
    fn the_spec_and_config_load_as_pym_reads_them() {
        let files = render("my-shop", &PymSource::Version("0.1.0".into()));
        let get = |p: &str| files.iter().find(|(q, _)| *q == p).unwrap().1.clone();
        pym_http::spec::Spec::parse("openapi.yaml", &get("openapi.yaml"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let secret = |k: &str| (k == "PYM_JWT_SECRET").then(|| "s".repeat(40));
        let config = pym_runtime::config::Config::from_yaml(
            "pym-config.yaml",
            &get("pym-config.yaml"),
            &secret,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.name, "my-shop");
    }

    /// The PymService is one the operator accepts: it parses as the CRD's
    /// type, and its config is the service's.
    #[test]
    fn the_pymservice_is_the_operators() {
        use pym_operator::crd::PymService;
        let files = render("my-shop", &PymSource::Version("0.1.0".into()));
        let get = |p: &str| files.iter().find(|(q, _)| *q == p).unwrap().1.clone();
        let svc: PymService = yaml_serde::from_str(&get("pymservice.yaml")).expect("a PymService");
        assert_eq!(svc.metadata.name.as_deref(), Some("my-shop"));
        assert!(svc.spec.with_async);
    }
}
