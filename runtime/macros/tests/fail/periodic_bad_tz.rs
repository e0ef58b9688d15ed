use pym_runtime::{TaskError, asynctask};

#[asynctask(cron = "0 3 * * *", tz = "Europe/Pariss")]
async fn periodic_bad_tz() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
