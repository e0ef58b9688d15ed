use pym_runtime::{TaskError, asynctask};

#[asynctask(unique(key = "user:{user}"))]
async fn unique_unknown_placeholder(user_id: String, n: u32) -> Result<(), TaskError> {
    let _ = (user_id, n);
    Ok(())
}

fn main() {}
