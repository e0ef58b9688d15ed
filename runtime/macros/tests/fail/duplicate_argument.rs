use pym_runtime::{TaskError, asynctask};

#[asynctask(queue = "emails", max_retries = 3, queue = "other")]
async fn duplicate_argument() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
