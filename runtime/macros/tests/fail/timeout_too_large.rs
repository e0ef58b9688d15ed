use pym_runtime::{TaskError, asynctask};

#[asynctask(timeout_secs = 18446744073709551616)]
async fn timeout_too_large() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
