use pym_runtime::{TaskError, asynctask};

#[asynctask(cron = "0 */5 * *")]
async fn periodic_bad_cron() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
