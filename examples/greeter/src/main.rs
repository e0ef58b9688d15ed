//! The greeter binary: see the library.

fn main() -> std::process::ExitCode {
    greeter::app().run()
}
