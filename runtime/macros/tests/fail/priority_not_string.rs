use pym_runtime::{TaskError, asynctask};

#[asynctask(priority = High)]
async fn priority_not_string() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
