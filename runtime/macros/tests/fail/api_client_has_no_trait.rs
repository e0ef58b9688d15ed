// A client-only api! generates no service trait to implement.
mod pets {
    pym_runtime::api!("../specs/pets.yaml", client);
}

struct Pets;
impl pets::PetsApi for Pets {}

fn main() {}
