use pym_runtime::{TaskError, asynctask};

#[asynctask(expires_in_secs = 0)]
async fn expires_in_zero() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
