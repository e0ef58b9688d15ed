use pym_runtime::{TaskError, asynctask};

#[asynctask(cron = "0 3 * * *")]
async fn periodic_not_a_tick(n: u32) -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
