use pym_runtime::{TaskError, asynctask};

#[asynctask(queue = "emails", retries = 3)]
async fn unknown_argument() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
