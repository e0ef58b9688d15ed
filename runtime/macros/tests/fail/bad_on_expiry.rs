use pym_runtime::{TaskError, asynctask};

#[asynctask(expires_in_secs = 60, on_expiry = "drop")]
async fn bad_on_expiry() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
