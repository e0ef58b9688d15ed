use pym_runtime::{TaskError, asynctask};

#[asynctask(fresh_token = true)]
async fn fresh_token_value() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
