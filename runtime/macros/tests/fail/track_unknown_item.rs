use pym_runtime::{TaskError, asynctask};

#[asynctask(track(ttl = 60))]
async fn track_unknown_item() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
