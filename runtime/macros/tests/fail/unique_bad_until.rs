use pym_runtime::{TaskError, asynctask};

#[asynctask(unique(key = "user:{user_id}", until = "done"))]
async fn unique_bad_until(user_id: String, n: u32) -> Result<(), TaskError> {
    let _ = (user_id, n);
    Ok(())
}

fn main() {}
