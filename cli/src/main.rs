//! `pym`: the developer's command of pym.
//!
//! - `pym new NAME`: a new service that builds and passes its tests at once.
//! - `pym openapi convert FILE`: a Swagger 2.0 (pymacaron) spec as OpenAPI 3.
//! - `pym openapi check FILE...`: what pym would refuse in a spec, before
//!   a build or a deploy does.

mod new;
mod openapi;
mod scaffold;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "pym",
    version,
    about = "pym's developer command: new services, OpenAPI conversion and checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a service: Cargo.toml, openapi.yaml, pym-config.yaml, src/
    /// (one endpoint, one task), tests, Dockerfile, pymservice.yaml.
    New(new::NewArgs),
    /// Convert or check OpenAPI documents.
    #[command(subcommand)]
    Openapi(OpenapiCommand),
}

#[derive(Subcommand, Debug)]
enum OpenapiCommand {
    /// Convert a Swagger 2.0 document (pymacaron's format) to OpenAPI 3.0:
    /// x-bind-server becomes operationId; what cannot be converted is
    /// listed on stderr.
    Convert {
        /// The Swagger 2.0 document (YAML or JSON).
        file: PathBuf,
        /// Where to write the result (default: stdout). A .json name writes
        /// JSON, anything else YAML.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Exit with status 1 when anything could not be converted exactly.
        #[arg(long)]
        strict: bool,
    },
    /// Check documents as pym reads them at build and at start-up: every
    /// operation has a unique operationId, security is well-formed,
    /// every $ref resolves, schemas compile, path parameters are declared,
    /// and the code generator accepts it.
    Check {
        /// The documents (OpenAPI 3.0/3.1, or Swagger 2.0 as it converts).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// A failure that ends the command: what went wrong and what to do.
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New(args) => new::run(&args),
        Command::Openapi(OpenapiCommand::Convert {
            file,
            output,
            strict,
        }) => openapi::convert(&file, output.as_deref(), strict),
        Command::Openapi(OpenapiCommand::Check { files }) => openapi::check(&files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("pym: {message}");
            ExitCode::FAILURE
        }
    }
}
