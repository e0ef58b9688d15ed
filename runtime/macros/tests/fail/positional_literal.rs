use pym_runtime::{TaskError, asynctask};

#[asynctask("emails")]
async fn positional_literal() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
