use pym_runtime::{TaskError, asynctask};

#[asynctask(queue = , max_retries = 3)]
async fn missing_value() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
