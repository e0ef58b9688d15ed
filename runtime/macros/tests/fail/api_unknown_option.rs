// An option api! does not know.
pym_runtime::api!("../specs/pets.yaml", server);

fn main() {}
