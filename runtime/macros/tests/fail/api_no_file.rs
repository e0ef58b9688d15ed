// A path that names no file.
pym_runtime::api!("../specs/nope.yaml");

fn main() {}
