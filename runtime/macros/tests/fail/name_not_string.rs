use pym_runtime::{TaskError, asynctask};

#[asynctask(name = 42)]
async fn name_not_string() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
