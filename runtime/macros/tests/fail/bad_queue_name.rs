use pym_runtime::{TaskError, asynctask};

#[asynctask(queue = "Emails:high")]
async fn bad_queue_name() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
