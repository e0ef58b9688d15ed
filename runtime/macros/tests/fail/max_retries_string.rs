use pym_runtime::{TaskError, asynctask};

#[asynctask(max_retries = "3")]
async fn max_retries_string() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
