use pym_runtime::asynctask;

#[asynctask]
async fn no_return_type(tag: String) {
    let _ = tag;
}

fn main() {}
