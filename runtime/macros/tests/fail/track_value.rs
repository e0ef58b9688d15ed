use pym_runtime::{TaskError, asynctask};

#[asynctask(track = true)]
async fn track_value() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
