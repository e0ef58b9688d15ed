//! Every error `#[asynctask]` reports, as a compile-fail case with its
//! expected compiler output (`tests/fail/*.stderr`), and uses that must keep
//! compiling (`tests/pass/*.rs`).
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
