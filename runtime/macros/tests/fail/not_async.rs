use pym_runtime::{TaskError, asynctask};

#[asynctask]
fn not_async(tag: String) -> Result<(), TaskError> {
    let _ = tag;
    Ok(())
}

fn main() {}
