use pym_runtime::{TaskError, asynctask};

struct Opaque;

#[asynctask(track)]
async fn track_result_not_serialize() -> Result<Opaque, TaskError> {
    Ok(Opaque)
}

fn main() {}
