use pym_runtime::asynctask;

#[asynctask]
struct NotAFunction;

fn main() {}
