use pym_runtime::{TaskError, Tick, asynctask};

#[asynctask(cron = "0 3 * * *")]
async fn periodic_two_arguments(tick: Tick, n: u32) -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
