use pym_runtime::{TaskError, asynctask};

#[asynctask]
async fn generic<T: Clone>(value: T) -> Result<(), TaskError> {
    let _ = value;
    Ok(())
}

fn main() {}
