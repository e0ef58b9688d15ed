use pym_runtime::{TaskError, asynctask};

#[asynctask(max_retries = 5000000000)]
async fn max_retries_too_large() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
