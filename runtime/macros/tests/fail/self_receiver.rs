use pym_runtime::{TaskError, asynctask};

struct Mailer;

impl Mailer {
    #[asynctask]
    async fn send(&self, to: String) -> Result<(), TaskError> {
        let _ = to;
        Ok(())
    }
}

fn main() {}
