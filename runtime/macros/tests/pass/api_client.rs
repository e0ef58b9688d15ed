// The client of an API this service calls: types, responses and
// `PetsClient`, without the service trait (no `bind`, nothing to implement).
mod pets {
    pym_runtime::api!("../specs/pets.yaml", client);
}

use pym_runtime::http::ApiError;

async fn calls(client: &pets::PetsClient) -> Result<(), ApiError> {
    // One 2XX declared: the method returns its body.
    let pet: pets::Pet = client.get_pet(pym_runtime::uuid::Uuid::nil(), Some(true)).await?;
    let added: pets::Pet = client.add_pet("key-1".into(), &pet).await?;
    let _ = added;
    Ok(())
}

fn main() {
    let client = pets::PetsClient::new("http://pets:8080").expect("a valid URL");
    let _ = calls(&client);
    assert_eq!(pets::PetsClient::SERVICE, "pets");
}
