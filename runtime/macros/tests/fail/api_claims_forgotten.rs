// An operation whose `security` requires a token gets the caller's claims
// first: a method without them does not fit.
use pym_runtime::http::ApiError;

pym_runtime::api!("../specs/secured.yaml");

struct Secured;

impl SecuredApi for Secured {
    async fn me(&self) -> Result<me::Response, ApiError> {
        Ok(me::Response::NoContent)
    }
}

fn main() {}
