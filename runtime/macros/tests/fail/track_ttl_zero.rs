use pym_runtime::{TaskError, asynctask};

#[asynctask(track(ttl_secs = 0))]
async fn track_ttl_zero() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
