use pym_runtime::{TaskError, asynctask};

#[asynctask(queue = emails)]
async fn queue_not_string() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
