use pym_runtime::{TaskError, asynctask};

#[asynctask(limit_key = "{claim.tenant}")]
async fn limit_key_alone(user_id: String, n: u32) -> Result<(), TaskError> {
    let _ = (user_id, n);
    Ok(())
}

fn main() {}
