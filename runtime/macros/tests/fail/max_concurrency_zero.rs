use pym_runtime::{TaskError, asynctask};

#[asynctask(max_concurrency = 0)]
async fn max_concurrency_zero(user_id: String, n: u32) -> Result<(), TaskError> {
    let _ = (user_id, n);
    Ok(())
}

fn main() {}
