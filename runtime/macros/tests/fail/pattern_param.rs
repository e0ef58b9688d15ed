use pym_runtime::{TaskError, asynctask};

#[asynctask]
async fn pattern_param((to, subject): (String, String)) -> Result<(), TaskError> {
    let _ = (to, subject);
    Ok(())
}

fn main() {}
