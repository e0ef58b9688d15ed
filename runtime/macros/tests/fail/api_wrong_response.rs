// Another operation's responses, and a status the operation does not declare.
use pym_runtime::http::ApiError;

pym_runtime::api!("../specs/pets.yaml");

struct Pets;

impl PetsApi for Pets {
    async fn get_pet(
        &self,
        _pet_id: pym_runtime::uuid::Uuid,
        _verbose: Option<bool>,
    ) -> Result<add_pet::Response, ApiError> {
        Ok(add_pet::Response::NotFound)
    }

    async fn add_pet(&self, _key: String, body: Pet) -> Result<add_pet::Response, ApiError> {
        Ok(add_pet::Response::Created(body))
    }
}

fn main() {}
