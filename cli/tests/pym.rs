//! The `pym` binary as a developer runs it: exit codes, messages, files.

use std::path::Path;
use std::process::{Command, Output};

const PYM: &str = env!("CARGO_BIN_EXE_pym");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn pym(args: &[&str]) -> Output {
    Command::new(PYM).args(args).output().expect("run pym")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn new_writes_a_service_and_refuses_to_overwrite_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    let dir_s = dir.to_str().unwrap();
    let runtime = format!("{ROOT}/runtime");
    let out = pym(&["new", "shop", "--path", dir_s, "--pym-path", &runtime]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("cargo test"), "{}", stdout(&out));
    for f in [
        "Cargo.toml",
        "openapi.yaml",
        "pym-config.yaml",
        "src/lib.rs",
        "src/main.rs",
        "tests/api.rs",
        "Dockerfile",
        "pymservice.yaml",
        "README.md",
        ".gitignore",
        ".dockerignore",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let abs = std::fs::canonicalize(&runtime).unwrap();
    assert!(
        manifest.contains(&format!("path = {:?}", abs.display().to_string())),
        "{manifest}"
    );

    let again = pym(&["new", "shop", "--path", dir_s]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("exists and is not empty"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn new_refuses_a_name_that_cannot_name_a_crate_and_a_pymservice() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["My_Service", "-x", &"a".repeat(41)] {
        let path = tmp.path().join("x");
        let out = pym(&["new", "--path", path.to_str().unwrap(), "--", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            stderr(&out).contains("a service name is"),
            "{name}: {}",
            stderr(&out)
        );
        assert!(!path.exists(), "{name}: nothing is written");
    }
}

/// By default a new service asks for the pym-runtime of this `pym`'s own
/// version from the registry, as a team outside this repository would.
#[test]
fn new_depends_on_pym_by_version_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svc");
    let out = pym(&["new", "svc", "--path", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = env!("CARGO_PKG_VERSION");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("pym-runtime = \"{v}\"")),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!(
            "pym-runtime = {{ version = \"{v}\", features = [\"testing\"] }}"
        )),
        "{manifest}"
    );
    assert!(!manifest.contains("path ="), "{manifest}");
    assert!(stdout(&out).contains("--pym-path"), "{}", stdout(&out));
}

#[test]
fn new_takes_the_registry_version_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("svc");
    let out = pym(&[
        "new",
        "svc",
        "--path",
        dir.to_str().unwrap(),
        "--pym-version",
        "0.1.0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("pym-runtime = \"0.1.0\""), "{manifest}");
}

#[test]
fn check_passes_pyms_own_specs_and_names_each_problem() {
    let good = [
        "examples/hello/openapi.yaml",
        "examples/greeter/openapi.yaml",
    ]
    .map(|f| format!("{ROOT}/{f}"));
    let out = pym(&["openapi", "check", &good[0], &good[1]]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).matches(": ok").count(), 2);

    let broken = format!("{ROOT}/runtime/macros/tests/specs/broken.yaml");
    let out = pym(&["openapi", "check", &broken]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    // Each problem once, with its place, though both of pym's readers see it.
    assert_eq!(
        text.matches("paths./a.get: no operationId").count(),
        1,
        "{text}"
    );
    assert!(text.contains("paths./b.get: response key '2X'"), "{text}");
    assert!(
        stderr(&out).contains("2 problems found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_and_convert_say_what_is_wrong_with_their_input() {
    let out = pym(&["openapi", "check", "/nonexistent.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent.yaml"));

    let v3 = format!("{ROOT}/examples/hello/openapi.yaml");
    let out = pym(&["openapi", "convert", &v3]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a Swagger 2.0 document (openapi: 3.1.0)"),
        "{}",
        stderr(&out)
    );
    assert!(Path::new(&v3).is_file());
}

/// pymacaron's spec (Swagger 2.0, handlers bound by x-bind-server) becomes
/// an OpenAPI 3 document that pym's check accepts as it is.
#[test]
fn convert_turns_a_pymacaron_spec_into_one_pym_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!("{ROOT}/runtime/tests/http_fixtures/swagger2.yaml");
    let out_yaml = tmp.path().join("openapi.yaml");
    let out = pym(&[
        "openapi",
        "convert",
        &spec,
        "-o",
        out_yaml.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&out_yaml).unwrap();
    assert!(
        text.starts_with("openapi: 3.0"),
        "top-level keys in reading order:\n{text}"
    );
    for id in ["operationId: create_item", "operationId: get_item"] {
        assert!(text.contains(id), "{id} missing:\n{text}");
    }
    let check = pym(&["openapi", "check", out_yaml.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );

    let out_json = tmp.path().join("openapi.json");
    let out = pym(&[
        "openapi",
        "convert",
        &spec,
        "-o",
        out_json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).expect("JSON");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
}

/// What cannot be converted exactly is said, with its place; `--strict`
/// makes it an error, and loading the 2.0 file as it is refuses it.
#[test]
fn convert_reports_what_it_cannot_carry_over() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("tsv.yaml");
    std::fs::write(
        &spec,
        r#"swagger: "2.0"
info: {title: t, version: "1"}
paths:
  /items:
    get:
      x-bind-server: app.api.list_items
      parameters:
        - {name: ids, in: query, type: array, items: {type: string}, collectionFormat: tsv}
      responses:
        "200": {description: ok}
"#,
    )
    .unwrap();
    let spec_s = spec.to_str().unwrap();
    let out = pym(&["openapi", "convert", spec_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("operationId: list_items"),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("tsv"), "{}", stderr(&out));

    let strict = pym(&["openapi", "convert", "--strict", spec_s]);
    assert_eq!(strict.status.code(), Some(1));

    let check = pym(&["openapi", "check", spec_s]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("pym openapi convert"),
        "{}",
        stdout(&check)
    );
}
