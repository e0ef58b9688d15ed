use pym_runtime::{TaskError, asynctask};

#[asynctask(timeout_secs = 0)]
async fn timeout_zero() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
