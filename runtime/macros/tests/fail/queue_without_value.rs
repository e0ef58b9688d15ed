use pym_runtime::{TaskError, asynctask};

#[asynctask(queue)]
async fn queue_without_value() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
