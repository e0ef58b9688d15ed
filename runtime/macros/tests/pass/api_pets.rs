// Every operation implemented with the generated types; the crate has no
// serde, uuid or chrono dependency of its own.
use pym_runtime::http::ApiError;
use pym_runtime::http::axum::http::StatusCode;

pym_runtime::api!("../specs/pets.yaml");

struct Pets;

impl PetsApi for Pets {
    async fn get_pet(
        &self,
        pet_id: pym_runtime::uuid::Uuid,
        verbose: Option<bool>,
    ) -> Result<get_pet::Response, ApiError> {
        let _ = (pet_id, verbose);
        Ok(get_pet::Response::NotFound)
    }

    async fn add_pet(
        &self,
        x_idempotency_key: String,
        body: Pet,
    ) -> Result<add_pet::Response, ApiError> {
        if x_idempotency_key.is_empty() {
            return Ok(add_pet::Response::Status4xx(StatusCode::CONFLICT));
        }
        let kind: PetKind = body.kind;
        let born: Option<pym_runtime::chrono::DateTime<pym_runtime::chrono::Utc>> = body.born;
        Ok(add_pet::Response::Created(Pet {
            id: body.id,
            name: body.name,
            kind,
            born,
        }))
    }
}

fn main() {
    let _service = |b| bind(b, Pets);
}
