//! Test support: a real `redis-server` on a free loopback port, stopped when
//! dropped; and a Redis Sentinel set ([`SentinelSet`]) and a Redis Cluster
//! ([`RedisCluster`]) of such processes.
//! The one implementation used by pym's own tests, services' tests and the
//! e2e harness (`pym_e2e` re-exports it).
//!
//! The binary is `$PYM_REDIS_SERVER`, else `redis-server` from `PATH`
//! (Debian: `apt-get install -y redis-server`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started server may take to answer PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Fresh ports tried when a server exits at once (someone took the port).
const START_ATTEMPTS: usize = 3;

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it).
/// Another process can still take it before you bind: retry on "address in use".
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// A `redis-server` child process without persistence (unless its extra
/// arguments ask for it), killed on drop: a server, a replica or a sentinel.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    password: Option<String>,
    extra: Vec<String>,
    /// A sentinel's configuration file text (`redis-server <file> --sentinel`).
    sentinel: Option<String>,
}

impl RedisServer {
    /// Start a server without persistence on a free port.
    pub fn start() -> Self {
        Self::start_with(None, Vec::new())
    }

    /// Start a server that requires `password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_with(Some(password.to_owned()), Vec::new())
    }

    /// Start a server with extra `redis-server` arguments; returns once it
    /// answers PING. A server that exits at once (most likely someone took
    /// the port in the meantime) is tried again on another port.
    pub fn start_with(password: Option<String>, extra: Vec<String>) -> Self {
        Self::start_any(password, extra, None)
    }

    /// Start a replica of the server on 127.0.0.1:`master_port`, with extra
    /// arguments (e.g. `--appendonly yes`).
    pub fn start_replica(master_port: u16, extra: Vec<String>) -> Self {
        let mut args = vec![
            "--replicaof".to_owned(),
            "127.0.0.1".to_owned(),
            master_port.to_string(),
        ];
        args.extend(extra);
        Self::start_with(None, args)
    }

    /// Start a Redis Sentinel (`redis-server <conf> --sentinel`) watching
    /// the master on 127.0.0.1:`master_port` as `name` with `quorum`; a
    /// master is down after 1 s without answers, a failover times out
    /// after 3 s.
    pub fn start_sentinel(master_port: u16, name: &str, quorum: u32) -> Self {
        Self::start_sentinel_with(master_port, name, quorum, Vec::new())
    }

    /// [`RedisServer::start_sentinel`] with extra arguments (e.g. TLS).
    pub fn start_sentinel_with(
        master_port: u16,
        name: &str,
        quorum: u32,
        extra: Vec<String>,
    ) -> Self {
        let conf = format!(
            "sentinel resolve-hostnames no\n\
             sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 3000\n"
        );
        Self::start_any(None, extra, Some(conf))
    }

    fn start_any(password: Option<String>, extra: Vec<String>, sentinel: Option<String>) -> Self {
        let mut last_error = String::new();
        for _attempt in 0..START_ATTEMPTS {
            let mut server = RedisServer {
                child: None,
                port: free_port(),
                dir: tempfile::Builder::new()
                    .prefix("pym-redis-")
                    .tempdir()
                    .expect("create redis temp dir"),
                password: password.clone(),
                extra: extra.clone(),
                sentinel: sentinel.clone(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}")
    }

    fn command(&self) -> Command {
        let program = std::env::var_os("PYM_REDIS_SERVER").unwrap_or_else(|| "redis-server".into());
        let mut cmd = Command::new(program);
        if self.sentinel.is_some() {
            cmd.arg(self.sentinel_conf()).arg("--sentinel");
        }
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.arg("--requirepass").arg(p);
        }
        cmd
    }

    fn sentinel_conf(&self) -> std::path::PathBuf {
        self.dir.path().join("sentinel.conf")
    }

    /// Starts the process on `self.port` and waits until it answers.
    fn spawn(&mut self) -> Result<(), String> {
        if let Some(conf) = &self.sentinel {
            // Written anew each start: a sentinel rewrites its file.
            std::fs::write(self.sentinel_conf(), conf).map_err(|e| e.to_string())?;
        }
        let mut cmd = self.command();
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot start {} ({e}): install it, e.g. `apt-get install redis-server`",
                cmd.get_program().to_string_lossy()
            )
        })?;
        let child = self.child.insert(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited: {status}",
                    self.port
                ));
            }
            match ping(self.port) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "redis-server on port {} not answering after {START_TIMEOUT:?}: {e}",
                        self.port
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://[:password@]127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Kill the server (SIGKILL); data is lost (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.spawn() {
            panic!("redis-server did not restart: {e}");
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The temporary directory goes with the field, after the process.
        self.kill();
    }
}

/// How long a [`SentinelSet`] may take to link its replicas and settle.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Redis Sentinel on local processes: a master, its replicas and three
/// sentinels (quorum 2) watching it as [`SentinelSet::NAME`] (down after
/// 1 s without answers, see [`RedisServer::start_sentinel`]). Every
/// process is killed on drop.
///
/// ```no_run
/// let mut set = pym_runtime::testing::SentinelSet::start();
/// let url = set.url(); // redis-sentinel://127.0.0.1:p1,...,127.0.0.1:p3/0#m
/// set.kill_master(); // SIGKILL: the sentinels promote the replica
/// ```
pub struct SentinelSet {
    /// The first master; after a failover, no longer the master (see
    /// [`SentinelSet::named_master`]).
    pub master: RedisServer,
    pub replicas: Vec<RedisServer>,
    pub sentinels: Vec<RedisServer>,
}

impl SentinelSet {
    /// The master's name the sentinels know.
    pub const NAME: &'static str = "m";

    /// A master with one replica, and three sentinels; returns once they
    /// agree (see [`SentinelSet::start_with`]).
    pub fn start() -> Self {
        Self::start_with(1, Vec::new())
    }

    /// A master (with extra `redis-server` arguments `master_args`) with
    /// `replicas` replicas, and three sentinels; returns once the replicas
    /// are linked and every sentinel knows them, the master and the other
    /// sentinels.
    pub fn start_with(replicas: usize, master_args: Vec<String>) -> Self {
        let master = RedisServer::start_with(None, master_args);
        let replicas: Vec<RedisServer> = (0..replicas)
            .map(|_| RedisServer::start_replica(master.port(), Vec::new()))
            .collect();
        // Linked before the sentinels start: they see the replicas in their
        // first INFO of the master (the next one is 10 s later).
        let linked = format!("connected_slaves:{}", replicas.len());
        wait_until("the replicas to link", || {
            query::<String>(master.port(), redis::cmd("INFO").arg("replication"))
                .is_ok_and(|info| info.contains(&linked))
        });
        let sentinels = (0..3)
            .map(|_| RedisServer::start_sentinel(master.port(), Self::NAME, 2))
            .collect();
        let set = SentinelSet {
            master,
            replicas,
            sentinels,
        };
        let replicas = set.replicas.len().to_string();
        wait_until("the sentinels to settle", || {
            set.sentinels.iter().all(|s| {
                let m: std::collections::HashMap<String, String> = match query(
                    s.port(),
                    redis::cmd("SENTINEL").arg("MASTER").arg(Self::NAME),
                ) {
                    Ok(m) => m,
                    Err(_) => return false,
                };
                m.get("num-other-sentinels").map(String::as_str) == Some("2")
                    && m.get("num-slaves") == Some(&replicas)
                    && m.get("flags").map(String::as_str) == Some("master")
            })
        });
        set
    }

    /// `redis-sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/0#m`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        format!("redis-sentinel://{}/0#{}", hosts.join(","), Self::NAME)
    }

    /// The port of the first master.
    pub fn master_port(&self) -> u16 {
        self.master.port()
    }

    /// SIGKILL of the first master: the sentinels see it down after 1 s
    /// and promote a replica.
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// The port of the master the first sentinel that answers names, if
    /// one answers.
    pub fn named_master(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            query::<(String, u16)>(
                s.port(),
                redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(Self::NAME),
            )
            .ok()
            .map(|(_, port)| port)
        })
    }
}

/// A Redis Cluster of masters without replicas: `redis-server
/// --cluster-enabled yes` processes joined by `redis-cli --cluster create`
/// (Debian package `redis-tools`), which splits the 16384 slots evenly.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// `masters` masters (at least 3, as `redis-cli --cluster create`
    /// requires); returns once every node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> Self {
        let args = || {
            [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]
            .map(String::from)
            .to_vec()
        };
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| RedisServer::start_with(None, args()))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (Debian package redis-tools) runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes };
        wait_until("the cluster to be ok", || {
            cluster.nodes.iter().all(|n| {
                query::<String>(n.port(), redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
        });
        cluster
    }

    /// `redis-cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        format!("redis-cluster://{}", hosts.join(","))
    }

    /// The port of the master that holds the slot of `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.nodes[0].port();
        let slot: i64 =
            query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).expect("CLUSTER KEYSLOT");
        slot_ranges(port)
            .into_iter()
            .find(|(a, b, _)| (*a..=*b).contains(&slot))
            .map(|(_, _, (_, p))| p)
            .expect("a master holds every slot")
    }
}

/// `CLUSTER SLOTS` of the node on `port`: (first slot, last slot, master).
fn slot_ranges(port: u16) -> Vec<(i64, i64, (String, u16))> {
    let raw: Vec<redis::Value> =
        query(port, redis::cmd("CLUSTER").arg("SLOTS")).expect("CLUSTER SLOTS");
    raw.into_iter()
        .map(|r| {
            // [first, last, [host, port, id, ...], replicas...]
            let r: Vec<redis::Value> = redis::from_redis_value(r).expect("a slot range");
            let m: Vec<redis::Value> = redis::from_redis_value(r[2].clone()).expect("a master");
            let int =
                |v: &redis::Value| redis::from_redis_value::<i64>(v.clone()).expect("a number");
            let host = redis::from_redis_value(m[0].clone()).expect("a host");
            let port = u16::try_from(int(&m[1])).expect("a port");
            (int(&r[0]), int(&r[1]), (host, port))
        })
        .collect()
}

/// One command to 127.0.0.1:`port`, on a fresh connection with timeouts.
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    let timeout = Duration::from_secs(2);
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}/0")).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(timeout)
        .map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    cmd.query(&mut conn).map_err(|e| e.to_string())
}

/// Polls `f` until it holds; panics after [`SETTLE_TIMEOUT`].
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends PING to 127.0.0.1:`port` and judges the reply.
fn ping(port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    stream.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).map_err(|e| e.to_string())?;
    answering(&buf[..n])
}

/// Whether a reply to PING means the server is up: PONG, or NOAUTH when it
/// requires a password (it answers, it just wants AUTH first).
fn answering(reply: &[u8]) -> Result<(), String> {
    if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") {
        Ok(())
    } else {
        Err(format!(
            "unexpected reply to PING: {:?}",
            String::from_utf8_lossy(reply)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::answering;

    #[test]
    fn a_reply_to_ping_is_answering_only_when_the_server_is_up() {
        let cases: [(&[u8], bool); 5] = [
            (b"+PONG\r\n", true),
            (b"-NOAUTH Authentication required.\r\n", true),
            (
                b"-LOADING Redis is loading the dataset in memory\r\n",
                false,
            ),
            (b"", false),
            (b"HTTP/1.1 400 Bad Request\r\n", false),
        ];
        for (reply, up) in cases {
            assert_eq!(
                answering(reply).is_ok(),
                up,
                "{:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }
}
