// A handler whose future cannot move between threads.
use pym_runtime::http::ApiError;
use std::rc::Rc;

pym_runtime::api!("../specs/pets.yaml");

struct Pets;

async fn later() {}

impl PetsApi for Pets {
    async fn get_pet(
        &self,
        _pet_id: pym_runtime::uuid::Uuid,
        _verbose: Option<bool>,
    ) -> Result<get_pet::Response, ApiError> {
        let held = Rc::new(1);
        later().await;
        drop(held);
        Ok(get_pet::Response::NotFound)
    }

    async fn add_pet(&self, _key: String, body: Pet) -> Result<add_pet::Response, ApiError> {
        Ok(add_pet::Response::Created(body))
    }
}

fn main() {}
