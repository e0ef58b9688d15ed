use pym_runtime::{TaskError, asynctask};

#[asynctask(timeout_secs = 1.5)]
async fn timeout_float() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
