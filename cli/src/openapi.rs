//! `pym openapi convert` and `pym openapi check`: thin shells over
//! pym-schema's Swagger 2.0 upgrade and the two readers of a spec pym has,
//! the run-time loader (pym-http) and the code generator (pym-codegen), so
//! `check` refuses exactly what a build or a start-up would.

use crate::Failure;
use pym_schema::swagger2;
use serde_json::Value;
use std::path::Path;

fn read(file: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(file)
        .map_err(|e| Failure(format!("cannot read {}: {e}", file.display())))
}

/// The document as a JSON value, YAML or JSON alike.
fn parse(file: &Path, text: &str) -> Result<Value, Failure> {
    yaml_serde::from_str(text)
        .map_err(|e| Failure(format!("{}: not YAML or JSON: {e}", file.display())))
}

/// Top-level keys first in the order people read them, then the rest.
const KEY_ORDER: &[&str] = &[
    "openapi",
    "info",
    "servers",
    "tags",
    "security",
    "paths",
    "components",
    "externalDocs",
];

/// The document as YAML, top-level keys in [`KEY_ORDER`] (serde_json's
/// maps are sorted, which would put `components` before `info`).
pub fn to_yaml(doc: &Value) -> Result<String, String> {
    let Value::Object(map) = doc else {
        return yaml_serde::to_string(doc).map_err(|e| e.to_string());
    };
    let mut keys: Vec<&String> = map.keys().collect();
    let rank = |k: &str| {
        KEY_ORDER
            .iter()
            .position(|o| *o == k)
            .unwrap_or(KEY_ORDER.len())
    };
    keys.sort_by_key(|k| rank(k));
    let mut out = String::new();
    for key in keys {
        let one = serde_json::json!({ key.as_str(): map[key.as_str()] });
        out.push_str(&yaml_serde::to_string(&one).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

pub fn convert(file: &Path, output: Option<&Path>, strict: bool) -> Result<(), Failure> {
    let doc = parse(file, &read(file)?)?;
    if !swagger2::is_swagger2(&doc) {
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .unwrap_or("no version");
        return Err(Failure(format!(
            "{}: not a Swagger 2.0 document (openapi: {version}); nothing to convert",
            file.display()
        )));
    }
    let upgrade = swagger2::upgrade(&doc).map_err(|notes| {
        let lines: Vec<String> = notes.iter().map(|n| format!("  - {n}")).collect();
        Failure(format!(
            "{}: cannot convert:\n{}",
            file.display(),
            lines.join("\n")
        ))
    })?;
    let json = output.is_some_and(|o| o.extension().is_some_and(|e| e == "json"));
    let text = if json {
        serde_json::to_string_pretty(&upgrade.document).map_err(|e| Failure(e.to_string()))? + "\n"
    } else {
        to_yaml(&upgrade.document).map_err(Failure)?
    };
    match output {
        Some(o) => std::fs::write(o, &text)
            .map_err(|e| Failure(format!("cannot write {}: {e}", o.display())))?,
        None => print!("{text}"),
    }
    for note in &upgrade.notes {
        eprintln!("{}: {note}", file.display());
    }
    let problems = problems(&file.display().to_string(), &text);
    for p in &problems {
        eprintln!("{}: after conversion: {p}", file.display());
    }
    let lossy = upgrade.notes.len() + problems.len();
    if lossy > 0 && strict {
        return Err(Failure(format!(
            "{lossy} things to fix by hand (listed above)"
        )));
    }
    Ok(())
}

/// Every problem pym's two readers find in `text`, each once.
pub fn problems(name: &str, text: &str) -> Vec<String> {
    let mut all = match pym_http::spec::Spec::parse(name, text) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    };
    let runtime = quote_runtime();
    let input = pym_codegen::Input {
        title: "",
        version: "",
        spec_name: name,
        spec_path: name,
        runtime: &runtime,
        server: true,
    };
    if let Err(more) = pym_codegen::generate(&input, text) {
        for p in more {
            if !all.contains(&p) {
                all.push(p);
            }
        }
    }
    all
}

fn quote_runtime() -> proc_macro2::TokenStream {
    "::pym_runtime".parse().expect("a path")
}

pub fn check(files: &[std::path::PathBuf]) -> Result<(), Failure> {
    let mut bad = 0;
    for file in files {
        let name = file.display().to_string();
        let text = read(file)?;
        let found = problems(&name, &text);
        if found.is_empty() {
            println!("{name}: ok");
        }
        for p in &found {
            println!("{name}: {p}");
        }
        bad += found.len();
    }
    match bad {
        0 => Ok(()),
        n => Err(Failure(format!("{n} problems found (listed above)"))),
    }
}
