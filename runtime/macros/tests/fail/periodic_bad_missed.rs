use pym_runtime::{TaskError, asynctask};

#[asynctask(cron = "0 3 * * *", missed = "all:0")]
async fn periodic_bad_missed() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
