use pym_runtime::{TaskError, asynctask};

#[asynctask(max_retries(3))]
async fn argument_list_form() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
