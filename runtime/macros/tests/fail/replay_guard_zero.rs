use pym_runtime::{TaskError, asynctask};

#[asynctask(replay_guard_secs = 0)]
async fn replay_guard_zero() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
