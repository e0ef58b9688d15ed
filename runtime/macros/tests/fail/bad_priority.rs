use pym_runtime::{TaskError, asynctask};

#[asynctask(priority = "urgent")]
async fn bad_priority() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
