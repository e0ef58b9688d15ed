//! {{name}} as its users see it: the binary runs (`{{name}} up`: API and
//! worker in one process) and is called through `{{Camel}}Client`, the
//! client generated from openapi.yaml.
//!
//! Without `PYM_REDIS_URL`, `up` runs tasks inline, so these tests need
//! nothing else. To go through a real Redis, start one with
//! `pym_runtime::testing::RedisServer::start()` and pass its `url()` as
//! `PYM_REDIS_URL` to `{{name}} serve` and `{{name}} worker`.

use pym_runtime::testing::free_port;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use {{crate}}::{deliver_message_async, Delivery, MessageRequest, {{Camel}}Client};

const BIN: &str = env!("CARGO_BIN_EXE_{{name}}");
/// A JWT secret for the tests (outside tests it comes from the environment).
const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// `{{name}} up` on a free port, killed when dropped.
struct Up {
    child: Child,
    port: u16,
}

impl Up {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .args(["up", "--port", &port.to_string()])
            .env_remove("PYM_REDIS_URL")
            .env("PYM_JWT_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start {{name}} up");
        let up = Up { child, port };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(30), "{{name}} up did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_message_is_accepted_and_its_delivery_queued() {
    let up = Up::start();
    let client = {{Camel}}Client::new(&up.url()).expect("client");
    let request = MessageRequest {
        to: "ada@example.com".parse().expect("an email"),
        text: "Hello!".parse().expect("1 to 2000 characters"),
    };
    let accepted = client.send_message(&request).await.expect("202");
    assert!(!accepted.task_id.is_nil());
    assert_eq!(accepted.sent_by, None, "no token was sent");
}

#[test]
fn a_message_that_breaks_the_spec_cannot_be_built() {
    // The generated types hold the spec's constraints.
    assert!("".parse::<{{crate}}::MessageRequestText>().is_err());
    assert!("not an email".parse::<pym_runtime::Email>().is_err());
}

#[tokio::test]
async fn the_task_runs_inline_when_called_directly() {
    // Outside the binary, the config the task reads is installed by hand.
    let config = pym_runtime::config::Config::from_yaml(
        "pym-config.yaml",
        include_str!("../pym-config.yaml"),
        &|var| (var == "PYM_JWT_SECRET").then(|| SECRET.to_string()),
    )
    .expect("pym-config.yaml");
    pym_runtime::config::install(config);
    let delivery = Delivery {
        to: "ada@example.com".into(),
        text: "Hello!".into(),
    };
    deliver_message_async(delivery).await.expect("delivered");
}

#[test]
fn config_spec_and_handlers_agree() {
    let status = Command::new(BIN)
        .arg("check")
        .env("PYM_JWT_SECRET", SECRET)
        .status()
        .expect("run {{name}} check");
    assert!(status.success(), "{{name}} check failed");
}
