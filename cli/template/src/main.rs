//! The {{name}} binary: see the library.

fn main() -> std::process::ExitCode {
    {{crate}}::app().run()
}
