use pym_runtime::{TaskError, asynctask};

#[asynctask(max_retries = -1)]
async fn max_retries_negative() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
