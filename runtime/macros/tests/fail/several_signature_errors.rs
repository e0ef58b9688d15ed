use pym_runtime::{TaskError, asynctask};

// Every problem is reported at once, the arguments' and the signature's.
#[asynctask(priority = "urgent")]
fn several<T>(Wrapper(x): Wrapper<T>) -> Result<(), TaskError> {
    let _ = x;
    Ok(())
}

struct Wrapper<T>(T);

fn main() {}
