// The body forgotten.
use pym_runtime::http::ApiError;

pym_runtime::api!("../specs/pets.yaml");

struct Pets;

impl PetsApi for Pets {
    async fn get_pet(
        &self,
        _pet_id: pym_runtime::uuid::Uuid,
        _verbose: Option<bool>,
    ) -> Result<get_pet::Response, ApiError> {
        Ok(get_pet::Response::NotFound)
    }

    async fn add_pet(&self, _key: String) -> Result<add_pet::Response, ApiError> {
        Ok(add_pet::Response::Status4xx(pym_runtime::http::axum::http::StatusCode::CONFLICT))
    }
}

fn main() {}
