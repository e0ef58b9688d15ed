use pym_runtime::{TaskError, asynctask};

const TIMEOUT: u64 = 30;

#[asynctask(timeout_secs = TIMEOUT)]
async fn timeout_expression() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
