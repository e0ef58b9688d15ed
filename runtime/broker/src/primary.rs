//! The connection that follows the primary: [`BrokerConn`], what
//! [`crate::Broker::conn`] returns.
//!
//! With a plain `redis://` URL it is the shared [`ConnectionManager`] of
//! old, one `match` away. With a `redis-sentinel://` URL it asks the
//! sentinels where the master is, keeps one multiplexed connection there
//! (shared by every clone), and moves when the master does:
//!
//! - an error proving the command did not run (`READONLY`: the node was
//!   demoted; `LOADING`; `MASTERDOWN`; connection refused) makes it ask the
//!   sentinels again (one lookup shared by concurrent callers), move, and
//!   send the command once more;
//! - an error after which the command may have run (the connection cut
//!   mid-exchange, a timeout) is returned at once, and the next command
//!   asks the sentinels first;
//! - what the sentinels announce ([`crate::sentinel_events`]) moves it at
//!   once: commands wait (up to the response timeout) from the moment a
//!   promotion is announced until `+switch-master` names the new master.
//!   The old master would go on accepting writes for seconds after the
//!   promotion (until the sentinels demote it), lost when it resyncs.
//!
//! [`after_error`] is that decision, a pure function.

use crate::sentinel_events;
use crate::sentinel_url::SentinelUrl;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo,
    Pipeline, RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind,
    TlsCertificates, TlsMode, Value,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What to do after a command failed with an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterError {
    /// The command did not run: ask the sentinels for the master, move
    /// there and send it once more.
    Resend,
    /// The command may have run: return the error, and ask the sentinels
    /// before the next command.
    Reresolve,
    /// An answer of the master (a wrong type, a script error...): return it.
    Keep,
}

/// What the error `e` of a command means for the connection.
pub fn after_error(e: &RedisError) -> AfterError {
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::ReadOnly | ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown,
        ) => AfterError::Resend,
        ErrorKind::Io if e.is_connection_refusal() => AfterError::Resend,
        // A reply that does not parse leaves the stream out of step, as
        // a cut or a timeout leaves the command's fate unknown.
        ErrorKind::Io | ErrorKind::Parse => AfterError::Reresolve,
        _ => AfterError::Keep,
    }
}

/// [`after_error`] of a reply: its error, or for a pipeline the error of
/// its first command. Only the first one counts for [`AfterError::Resend`]:
/// a node refuses writes from its demotion on, so a pipeline whose first
/// command was refused had nothing written, while one refused later may
/// have written its first commands (then it is [`AfterError::Reresolve`]).
fn after_reply(reply: &RedisResult<Reply>) -> Option<AfterError> {
    let server = |v: &Value| match v {
        Value::ServerError(e) => Some(after_error(&e.clone().into())),
        _ => None,
    };
    match reply {
        Err(e) => Some(after_error(e)),
        Ok(Reply::One(v)) => server(v),
        Ok(Reply::Many(vs)) => match vs.first().and_then(server) {
            Some(first) => Some(first),
            None => vs
                .iter()
                .filter_map(server)
                .find(|a| *a != AfterError::Keep)
                .map(|_| AfterError::Reresolve),
        },
    }
}

/// A connection to the broker's Redis that follows the primary (see the
/// module); cheap to clone, clones share the connection.
#[derive(Clone)]
pub struct BrokerConn(Route);

#[derive(Clone)]
enum Route {
    Direct(ConnectionManager),
    Sentinel(Arc<Follower>),
    Cluster(ClusterConnection),
}

impl BrokerConn {
    /// A plain URL's connection: `manager`, unchanged.
    pub(crate) fn direct(manager: ConnectionManager) -> Self {
        BrokerConn(Route::Direct(manager))
    }

    /// A `redis-cluster://` URL's connection: `conn`, with pipelines
    /// split by slot (see [`crate::cluster`]).
    pub(crate) fn cluster(conn: ClusterConnection) -> Self {
        BrokerConn(Route::Cluster(conn))
    }

    pub(crate) fn follower(&self) -> Option<&Arc<Follower>> {
        match &self.0 {
            Route::Sentinel(f) => Some(f),
            Route::Direct(_) | Route::Cluster(_) => None,
        }
    }

    /// The cluster connection, for a `redis-cluster://` URL.
    pub(crate) fn cluster_conn(&self) -> Option<&ClusterConnection> {
        match &self.0 {
            Route::Cluster(c) => Some(c),
            Route::Direct(_) | Route::Sentinel(_) => None,
        }
    }
}

impl ConnectionLike for BrokerConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Route::Direct(c) => c.req_packed_command(cmd),
            Route::Cluster(c) => c.req_packed_command(cmd),
            Route::Sentinel(f) => Box::pin(async move {
                match f.send(Packed::One(cmd)).await? {
                    Reply::One(v) => Ok(v),
                    Reply::Many(_) => unreachable!("one command, one reply"),
                }
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Route::Direct(c) => c.req_packed_commands(pipeline, offset, count),
            Route::Cluster(c) => Box::pin(crate::cluster::pipeline(c, pipeline, offset, count)),
            Route::Sentinel(f) => Box::pin(async move {
                match f.send(Packed::Many(pipeline, offset, count)).await? {
                    Reply::Many(v) => Ok(v),
                    Reply::One(_) => unreachable!("a pipeline, many replies"),
                }
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Route::Direct(c) => c.get_db(),
            Route::Sentinel(f) => f.db,
            Route::Cluster(_) => 0,
        }
    }
}

#[derive(Clone, Copy)]
enum Packed<'a> {
    One(&'a Cmd),
    Many(&'a Pipeline, usize, usize),
}

enum Reply {
    One(Value),
    Many(Vec<Value>),
}

impl Packed<'_> {
    async fn send(self, conn: &mut MultiplexedConnection) -> RedisResult<Reply> {
        match self {
            Packed::One(cmd) => conn.req_packed_command(cmd).await.map(Reply::One),
            Packed::Many(p, offset, count) => conn
                .req_packed_commands(p, offset, count)
                .await
                .map(Reply::Many),
        }
    }
}

/// The master of the moment, as one lookup found it.
#[derive(Clone)]
struct Master {
    /// Counts the moves: a caller that saw generation `g` fail asks for a
    /// master other than `g`.
    generation: u64,
    client: redis::Client,
    conn: MultiplexedConnection,
}

impl Master {
    fn addr(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }
}

#[derive(Default)]
struct State {
    master: Option<Master>,
    /// How the last master was reached (credentials, db, TLS), for the
    /// master a `+switch-master` names.
    template: Option<ConnectionInfo>,
    generation: u64,
    /// Lookups done so far, and the error of the last one if it failed: a
    /// caller that waited for another's lookup takes its result.
    lookups: u64,
    last_error: Option<RedisError>,
    /// Until when commands wait for a failover a sentinel announced.
    hold: Option<Instant>,
}

/// The longest a failover holds commands back without `+switch-master`
/// (nor an abort): then they go to the master the sentinels name.
const HOLD_MAX: Duration = Duration::from_secs(10);

/// The sentinel side of [`BrokerConn`].
pub(crate) struct Follower {
    /// Held while asking the sentinels: one lookup at a time.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    state: Mutex<State>,
    /// For the shared connection (with the response timeout).
    config: AsyncConnectionConfig,
    /// The longest one command waits out a failover.
    hold_wait: Duration,
    lookup_timeout: Duration,
    db: i64,
    /// Stops the `+switch-master` listener when the follower goes.
    listener: CancellationToken,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.listener.cancel();
    }
}

/// How a [`Follower`] connects.
pub(crate) struct FollowerConfig {
    pub response_timeout: Duration,
    pub connection_timeout: Duration,
    /// PEM CA for `rediss-sentinel://` (sentinels and master).
    pub ca: Option<Vec<u8>>,
}

impl Follower {
    /// Builds the sentinel client for `url` and finds the master (an error
    /// if no sentinel knows a reachable one).
    pub(crate) async fn connect(url: &SentinelUrl, cfg: FollowerConfig) -> RedisResult<BrokerConn> {
        let follower = Arc::new(Follower {
            sentinel: tokio::sync::Mutex::new(sentinel_client(url, cfg.ca.clone())?),
            state: Mutex::new(State::default()),
            config: AsyncConnectionConfig::new()
                .set_response_timeout(Some(cfg.response_timeout))
                .set_connection_timeout(Some(cfg.connection_timeout)),
            hold_wait: cfg.response_timeout,
            lookup_timeout: cfg.connection_timeout,
            db: url.db,
            listener: CancellationToken::new(),
        });
        follower.master(None).await?;
        let sentinels = sentinel_clients(url, cfg.ca.as_deref())?;
        sentinel_events::spawn_listeners(
            Arc::downgrade(&follower),
            sentinels,
            url.master_name.clone(),
            follower.listener.clone(),
        );
        Ok(BrokerConn(Route::Sentinel(follower)))
    }

    /// Sends `req` to the master, moving and sending once more if it
    /// proves the command did not run (see the module).
    async fn send(&self, req: Packed<'_>) -> RedisResult<Reply> {
        self.wait_out_failover().await?;
        let mut failed = None;
        loop {
            let mut master = self.master(failed).await?;
            let reply = req.send(&mut master.conn).await;
            match after_reply(&reply) {
                None | Some(AfterError::Keep) => return reply,
                Some(AfterError::Resend) if failed.is_none() => {
                    tracing::info!(master = %master.addr(), "the Redis master refused a command it did not run; asking the sentinels");
                    self.forget(master.generation);
                    failed = Some(master.generation);
                }
                Some(_) => {
                    self.forget(master.generation);
                    return reply;
                }
            }
        }
    }

    /// Waits while a failover holds commands back (see [`Follower::hold`]),
    /// at most the response timeout: then a "master down" error.
    async fn wait_out_failover(&self) -> RedisResult<()> {
        let give_up = Instant::now() + self.hold_wait;
        loop {
            let held = {
                let mut st = self.state.lock().unwrap();
                match st.hold {
                    Some(until) if until > Instant::now() => true,
                    Some(_) => {
                        st.hold = None;
                        false
                    }
                    None => false,
                }
            };
            if !held {
                return Ok(());
            }
            if Instant::now() >= give_up {
                return Err(RedisError::from((
                    ErrorKind::Server(ServerErrorKind::MasterDown),
                    "a Sentinel failover is under way",
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A sentinel announced a promotion: hold commands back from the old
    /// master until the switch (or an abort, or [`HOLD_MAX`]).
    pub(crate) fn hold(&self) {
        self.state.lock().unwrap().hold = Some(Instant::now() + HOLD_MAX);
    }

    /// The failover was aborted: commands go on to the master.
    pub(crate) fn release(&self) {
        self.state.lock().unwrap().hold = None;
    }

    /// The current master, or (when there is none, or it is generation
    /// `failed`) the one the sentinels name now.
    async fn master(&self, failed: Option<u64>) -> RedisResult<Master> {
        if let Some(m) = self.current(failed) {
            return Ok(m);
        }
        self.lookup(failed).await
    }

    fn current(&self, failed: Option<u64>) -> Option<Master> {
        let st = self.state.lock().unwrap();
        st.master
            .as_ref()
            .filter(|m| Some(m.generation) != failed)
            .cloned()
    }

    /// Drops master `generation` (if still current): the next command asks
    /// the sentinels.
    fn forget(&self, generation: u64) {
        let mut st = self.state.lock().unwrap();
        if st
            .master
            .as_ref()
            .is_some_and(|m| m.generation == generation)
        {
            st.master = None;
        }
    }

    /// Asks the sentinels where the master is. Callers queue on the lock;
    /// one that waited for another's lookup takes its result instead of
    /// asking again.
    async fn lookup(&self, failed: Option<u64>) -> RedisResult<Master> {
        let seen = self.state.lock().unwrap().lookups;
        let mut sentinel = self.sentinel.lock().await;
        {
            let st = self.state.lock().unwrap();
            let fresh = st.master.as_ref().filter(|m| Some(m.generation) != failed);
            if st.lookups != seen {
                if let Some(m) = fresh {
                    return Ok(m.clone());
                }
                if let Some(e) = &st.last_error {
                    return Err(e.clone());
                }
            } else if let Some(m) = fresh {
                return Ok(m.clone());
            }
        }
        let found = self.ask(&mut sentinel).await;
        let client = {
            let mut st = self.state.lock().unwrap();
            st.lookups += 1;
            st.last_error = found.as_ref().err().cloned();
            let client = found?;
            let addr = client.get_connection_info().addr().to_string();
            if let Some(m) = st.master.as_ref().filter(|m| m.addr() == addr) {
                return Ok(m.clone());
            }
            client
        };
        self.move_to(client).await
    }

    /// Asks the sentinels (within the lookup timeout) for a client of the
    /// master; the sentinels' answer is checked with `ROLE` on the master.
    async fn ask(&self, sentinel: &mut SentinelClient) -> RedisResult<redis::Client> {
        match tokio::time::timeout(self.lookup_timeout, sentinel.async_get_client()).await {
            Ok(found) => found,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer from the sentinels in time",
            )
            .into()),
        }
    }

    /// Connects to the master `client` and makes it the current one.
    async fn move_to(&self, client: redis::Client) -> RedisResult<Master> {
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
            .inspect_err(|e| self.state.lock().unwrap().last_error = Some(e.clone()))?;
        let mut st = self.state.lock().unwrap();
        st.generation += 1;
        st.template = Some(client.get_connection_info().clone());
        let master = Master {
            generation: st.generation,
            client,
            conn,
        };
        tracing::info!(master = %master.addr(), generation = st.generation, "connected to the Redis master named by the sentinels");
        st.master = Some(master.clone());
        Ok(master)
    }

    /// A sentinel announced `host:port` as the new master: move there now
    /// (or, if that fails, ask the sentinels at the next command), and
    /// release the commands held back.
    pub(crate) async fn switch(&self, host: String, port: u16) {
        let _lookup = self.sentinel.lock().await;
        self.switch_locked(host, port).await;
        self.release();
    }

    async fn switch_locked(&self, host: String, port: u16) {
        let info = {
            let st = self.state.lock().unwrap();
            let here = st.master.as_ref().map(Master::addr);
            if here.as_deref() == Some(format!("{host}:{port}").as_str()) {
                return;
            }
            st.template.clone().and_then(|t| moved_to(t, host, port))
        };
        let Some(info) = info else {
            // No template (never connected) or not TCP: ask at the next command.
            self.forget_current();
            return;
        };
        let moved = match redis::Client::open(info) {
            Ok(client) => self.move_to(client).await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            tracing::warn!(error = %e, "cannot connect to the master a sentinel announced; asking the sentinels at the next command");
            self.forget_current();
        }
    }

    fn forget_current(&self) {
        self.state.lock().unwrap().master = None;
    }

    /// A dedicated connection to the current master, checked with `ROLE`:
    /// a master that refuses it, or is no longer master, is dropped and the
    /// sentinels are asked (once) for the next.
    pub(crate) async fn dedicated(
        &self,
        config: &AsyncConnectionConfig,
    ) -> RedisResult<MultiplexedConnection> {
        let mut failed = None;
        loop {
            let master = self.master(failed).await?;
            let checked = async {
                let mut conn = master
                    .client
                    .get_multiplexed_async_connection_with_config(config)
                    .await?;
                let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
                Ok::<_, RedisError>((
                    role.first() == Some(&Value::BulkString(b"master".to_vec())),
                    conn,
                ))
            }
            .await;
            match checked {
                Ok((true, conn)) => return Ok(conn),
                Ok((false, _)) if failed.is_none() => {}
                Ok((false, _)) => return Err(not_master(&master)),
                Err(e) if failed.is_none() && after_error(&e) != AfterError::Keep => {}
                Err(e) => return Err(e),
            }
            self.forget(master.generation);
            failed = Some(master.generation);
        }
    }

    /// Counts the moves of the master (see [`crate::Broker::master_generation`]).
    pub(crate) fn generation(&self) -> u64 {
        self.state.lock().unwrap().generation
    }
}

/// The master the sentinels named twice is not master (yet, or any more).
fn not_master(master: &Master) -> RedisError {
    RedisError::from((
        ErrorKind::MasterNameNotFoundBySentinel,
        "the master named by the sentinels does not answer ROLE as master",
        master.addr(),
    ))
}

/// `template` (a former master's address, credentials and TLS settings)
/// at `host:port`.
fn moved_to(template: ConnectionInfo, host: String, port: u16) -> Option<ConnectionInfo> {
    let mut addr = template.addr().clone();
    match &mut addr {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            (*h, *p) = (host, port);
        }
        _ => return None,
    }
    Some(template.set_addr(addr))
}

/// A client of each sentinel of `url` (for their announcements).
fn sentinel_clients(url: &SentinelUrl, ca: Option<&[u8]>) -> RedisResult<Vec<redis::Client>> {
    let mut settings = RedisConnectionInfo::default();
    if let Some(u) = &url.sentinel_username {
        settings = settings.set_username(u);
    }
    if let Some(p) = &url.sentinel_password {
        settings = settings.set_password(p);
    }
    url.sentinels
        .iter()
        .map(|(host, port)| {
            let info = sentinel_addr(url.tls, host, *port)
                .into_connection_info()?
                .set_redis_settings(settings.clone());
            match ca {
                Some(pem) if url.tls => redis::Client::build_with_tls(
                    info,
                    TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.to_vec()),
                    },
                ),
                _ => redis::Client::open(info),
            }
        })
        .collect()
}

fn sentinel_addr(tls: bool, host: &str, port: u16) -> ConnectionAddr {
    match tls {
        false => ConnectionAddr::Tcp(host.to_owned(), port),
        true => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        },
    }
}

/// The sentinel client of `url`: sentinels and master with the URL's
/// credentials, over TLS for `rediss-sentinel://`.
fn sentinel_client(url: &SentinelUrl, ca: Option<Vec<u8>>) -> RedisResult<SentinelClient> {
    let addrs = url
        .sentinels
        .iter()
        .map(|(host, port)| sentinel_addr(url.tls, host, *port));
    let mut b = SentinelClientBuilder::new(addrs, &url.master_name, SentinelServerType::Master)?
        .set_client_to_redis_db(url.db);
    if let Some(u) = &url.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &url.password {
        b = b.set_client_to_redis_password(p);
    }
    if let Some(u) = &url.sentinel_username {
        b = b.set_client_to_sentinel_username(u);
    }
    if let Some(p) = &url.sentinel_password {
        b = b.set_client_to_sentinel_password(p);
    }
    if url.tls {
        b = b.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(pem) = ca {
            let certs = |root_cert| TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            b = b
                .set_client_to_redis_certificates(certs(pem.clone()))
                .set_client_to_sentinel_certificates(certs(pem));
        }
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn server(reply: &str) -> RedisError {
        let v = redis::parse_redis_value(format!("-{reply}\r\n").as_bytes()).unwrap();
        match v {
            Value::ServerError(e) => e.into(),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn errors_decide_resend_reresolve_or_keep() {
        use AfterError::*;
        let io = |k: io::ErrorKind| RedisError::from(io::Error::from(k));
        let table = [
            (
                server("READONLY You can't write against a read only replica."),
                Resend,
            ),
            (
                server("LOADING Redis is loading the dataset in memory"),
                Resend,
            ),
            (server("MASTERDOWN Link with MASTER is down"), Resend),
            (io(io::ErrorKind::ConnectionRefused), Resend),
            (io(io::ErrorKind::ConnectionReset), Reresolve),
            (io(io::ErrorKind::BrokenPipe), Reresolve),
            (io(io::ErrorKind::UnexpectedEof), Reresolve),
            (io(io::ErrorKind::TimedOut), Reresolve),
            (redis::parse_redis_value(b"?\r\n").unwrap_err(), Reresolve),
            (server("WRONGTYPE Operation against a key"), Keep),
            (server("NOSCRIPT No matching script"), Keep),
            (server("ERR unknown command"), Keep),
            (server("NOGROUP No such key"), Keep),
            (server("EXECABORT Transaction discarded"), Keep),
            (server("BUSY Redis is busy running a script"), Keep),
            (
                RedisError::from((ErrorKind::AuthenticationFailed, "bad")),
                Keep,
            ),
        ];
        for (e, want) in table {
            assert_eq!(after_error(&e), want, "{e:?}");
        }
    }

    #[test]
    fn a_switch_keeps_credentials_db_and_tls_of_the_template() {
        let t = "rediss://u:p@10.0.0.1:6379/3"
            .into_connection_info()
            .unwrap();
        let moved = moved_to(t, "10.0.0.2".into(), 6380).unwrap();
        assert_eq!(moved.addr().to_string(), "10.0.0.2:6380");
        assert!(matches!(moved.addr(), ConnectionAddr::TcpTls { .. }));
        let r = moved.redis_settings();
        assert_eq!(
            (r.username(), r.password(), r.db()),
            (Some("u"), Some("p"), 3)
        );
        let unix = "unix:///tmp/redis.sock".into_connection_info().unwrap();
        assert!(moved_to(unix, "h".into(), 1).is_none());
    }

    #[test]
    fn pipelines_resend_only_when_the_first_command_was_refused() {
        use AfterError::*;
        let err = |r: &str| match redis::parse_redis_value(format!("-{r}\r\n").as_bytes()) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let ok = || Value::Okay;
        let many = |vs: Vec<Value>| Ok(Reply::Many(vs));
        let table = [
            (many(vec![ok(), ok()]), None),
            (
                many(vec![err("READONLY r"), err("READONLY r")]),
                Some(Resend),
            ),
            (many(vec![ok(), err("READONLY r")]), Some(Reresolve)),
            (many(vec![ok(), err("WRONGTYPE w")]), None),
            (many(vec![err("WRONGTYPE w"), ok()]), Some(Keep)),
            (Ok(Reply::One(err("LOADING l"))), Some(Resend)),
            (Ok(Reply::One(ok())), None),
        ];
        for (reply, want) in table {
            assert_eq!(after_reply(&reply), want);
        }
    }
}
