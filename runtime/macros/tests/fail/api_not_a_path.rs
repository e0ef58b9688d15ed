// Something else than a path.
pym_runtime::api!(pets);

fn main() {}
