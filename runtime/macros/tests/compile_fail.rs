//! Every error `#[asynctask]` reports, as a compile-fail case with its
//! expected compiler output (`tests/fail/*.stderr`), and uses that must keep
//! compiling (`tests/pass/*.rs`). `tests/fail/api_*.rs`: what `api!`
//! refuses: a spec it cannot read or use, and implementations of the
//! generated trait of the wrong shape (a missing or unknown operation, a
//! parameter of another type, a missing argument or missing claims, another operation's
//! responses, a future that is not `Send`); `tests/pass/api_pets.rs` a
//! whole implementation, in a crate with no serde, uuid or chrono of its
//! own.
//!
//! The `.stderr` files depend on the rustc version; regenerate them with
//! `TRYBUILD=overwrite cargo test -p pym-macros --test compile_fail`, then
//! read the diff.

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/fail/*.rs");
    t.pass("tests/pass/*.rs");
}
