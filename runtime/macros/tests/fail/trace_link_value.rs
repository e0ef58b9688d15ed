use pym_runtime::{TaskError, asynctask};

#[asynctask(trace_link = true)]
async fn trace_link_value() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}
