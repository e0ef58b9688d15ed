// Every problem of the spec is reported, at the path.
pym_runtime::api!("../specs/broken.yaml");

fn main() {}
