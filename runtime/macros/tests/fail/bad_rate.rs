use pym_runtime::{TaskError, asynctask};

#[asynctask(rate = "10/day")]
async fn bad_rate(user_id: String, n: u32) -> Result<(), TaskError> {
    let _ = (user_id, n);
    Ok(())
}

fn main() {}
