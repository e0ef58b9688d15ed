//! OpenTelemetry export for the commands that serve or run tasks (`serve`,
//! `worker`, `up`): started before the async runtime (the exporter's
//! client and batch thread are its own), stopped, flushing, at exit.
//! A setting it cannot honour is a usage error (exit 2) naming the variable.

use super::{Cmd, Fail, usage};
use pym_trace::exporter::{self, Exporter};

/// Start exporting spans if `cmd` makes them and the `OTEL_*` settings of
/// binary `name` ask for it; hold the result until exit.
pub(super) fn start(cmd: &Cmd, name: &str) -> Result<Option<Exporter>, Fail> {
    match cmd {
        Cmd::Serve(_) | Cmd::Worker(_) | Cmd::Up(_) => exporter::init(name)
            .map(Some)
            .map_err(|e| usage(format!("OpenTelemetry: {e}"))),
        _ => Ok(None),
    }
}
