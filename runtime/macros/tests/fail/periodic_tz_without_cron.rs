use pym_runtime::{TaskError, asynctask};

#[asynctask(tz = "UTC", missed = "skip")]
async fn periodic_tz_without_cron() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
