use pym_runtime::{TaskError, asynctask};

#[asynctask(urgent)]
async fn unknown_flag() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
