//! A small TCP transport for [`TypeConfig`] nodes: [`TcpNetwork`] (openraft's
//! `RaftNetworkFactory`), [`serve`] (the node's side) and [`Client`] (writes sent to the
//! leader, wherever it is).
//!
//! # Wire format, version 1
//!
//! One connection per peer, one call at a time. A frame is a little-endian `u32` length and
//! that many bytes of postcard (serde): a [`Call`] from the caller, a [`Reply`] back. A node's
//! address is its [`BasicNode::addr`], `host:port`.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError,
    RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{NodeId, Request, TypeConfig};

/// Frames larger than this are refused (a snapshot is sent in chunks well below it).
pub const MAX_FRAME: usize = 64 << 20;

/// A call from one node (or a client) to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Raft replication.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft snapshot transfer (one chunk).
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// Raft election.
    Vote(VoteRequest<NodeId>),
    /// A client's write, for the leader.
    ClientWrite(Request),
    /// Where the node is: for clients, monitoring and tests.
    Status,
}

/// A node's answer to [`Call::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The index of the last entry it applied to its event store.
    pub last_applied: Option<u64>,
    /// The index of the last entry in its log.
    pub last_log: Option<u64>,
}

/// The answer to a [`Call`], of the same variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// To [`Call::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// To [`Call::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// To [`Call::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// To [`Call::ClientWrite`].
    ClientWrite(
        Result<
            ClientWriteResponse<TypeConfig>,
            RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
        >,
    ),
    /// To [`Call::Status`].
    Status(Status),
}

/// `value` as a frame, or `None` if it is larger than [`MAX_FRAME`].
fn frame_of<T: Serialize>(value: &T) -> io::Result<Option<Vec<u8>>> {
    let body = postcard::to_allocvec(value).map_err(io::Error::other)?;
    let Some(len) = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME)
    else {
        return Ok(None);
    };
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(Some(frame))
}

async fn write_frame<T: Serialize>(stream: &mut TcpStream, value: &T) -> io::Result<()> {
    let frame = frame_of(value)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    stream.write_all(&frame).await
}

async fn read_frame<T: for<'de> Deserialize<'de>>(stream: &mut TcpStream) -> io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is too large"),
        ));
    }
    // Grown as bytes arrive: a length alone does not make the reader allocate.
    let mut body = Vec::new();
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut body)
        .await?;
    if body.len() != len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One connection to `addr`, opened on first use and again after any failed or abandoned
/// call.
struct Connection {
    addr: String,
    stream: Option<TcpStream>,
}

/// Why a call got no reply.
#[derive(Debug)]
enum CallError {
    /// No connection could be made: the node is down or unreachable.
    Connect(io::Error),
    /// The call does not fit in a frame.
    TooLarge,
    /// The connection failed or timed out during the call.
    Io(io::Error),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Connect(e) => write!(f, "cannot connect: {e}"),
            CallError::TooLarge => write!(f, "the call is larger than {MAX_FRAME} bytes"),
            CallError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for CallError {}

impl Connection {
    /// Sends `call` and reads its reply. The stream is taken out for the call and put back
    /// only after a whole reply, so a call abandoned halfway (its future dropped by a
    /// caller's own timeout) closes the connection instead of leaving a reply for the next
    /// call to read.
    async fn call(&mut self, call: &Call, timeout: Duration) -> Result<Reply, CallError> {
        let frame = frame_of(call)
            .map_err(CallError::Io)?
            .ok_or(CallError::TooLarge)?;
        let mut stream = match self.stream.take() {
            Some(s) => s,
            None => {
                let connect = TcpStream::connect(&self.addr);
                let s = match tokio::time::timeout(timeout, connect).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(CallError::Connect(e)),
                    Err(_) => {
                        return Err(CallError::Connect(io::ErrorKind::TimedOut.into()));
                    }
                };
                s.set_nodelay(true).map_err(CallError::Connect)?;
                s
            }
        };
        let exchange = async {
            stream.write_all(&frame).await?;
            read_frame(&mut stream).await
        };
        let reply = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r.map_err(CallError::Io)?,
            Err(_) => return Err(CallError::Io(io::ErrorKind::TimedOut.into())),
        };
        self.stream = Some(stream);
        Ok(reply)
    }
}

/// openraft's network factory over TCP: a connection per peer, made on first use.
#[derive(Clone, Debug, Default)]
pub struct TcpNetwork {}

impl TcpNetwork {
    /// A network with no connections yet.
    pub fn new() -> TcpNetwork {
        TcpNetwork {}
    }
}

/// The connection to one peer, as openraft uses it.
pub struct Peer {
    target: NodeId,
    connection: Connection,
}

impl RaftNetworkFactory<TypeConfig> for TcpNetwork {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            connection: Connection {
                addr: node.addr.clone(),
                stream: None,
            },
        }
    }
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Peer {
    async fn call(&mut self, call: Call, option: &RPCOption) -> Result<Reply, CallError> {
        self.connection.call(&call, option.hard_ttl()).await
    }

    /// A failed call as openraft's network error: a node that cannot be reached is backed
    /// off from; any other failure is retried at once.
    fn failed<E: std::error::Error>(e: &CallError) -> RPCError<NodeId, BasicNode, E> {
        match e {
            CallError::Connect(_) => RPCError::Unreachable(Unreachable::new(e)),
            CallError::TooLarge | CallError::Io(_) => RPCError::Network(NetworkError::new(e)),
        }
    }

    // openraft's own error type, returned as openraft's network trait asks.
    #[allow(clippy::result_large_err)]
    fn remote<T, E: std::error::Error>(
        &self,
        result: Result<T, RaftError<NodeId, E>>,
    ) -> RpcResult<T, E> {
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn wrong_reply<E: std::error::Error>() -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&io::Error::other(
        "a reply to another call",
    )))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        let entries = rpc.entries.len() as u64;
        match self.call(Call::AppendEntries(rpc), &option).await {
            Ok(Reply::AppendEntries(r)) => self.remote(r),
            Ok(_) => Err(wrong_reply()),
            // openraft sends fewer entries at a time when asked to.
            Err(CallError::TooLarge) if entries > 1 => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(entries / 2),
            )),
            Err(e) => Err(Self::failed(&e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.call(Call::InstallSnapshot(rpc), &option).await {
            Ok(Reply::InstallSnapshot(r)) => self.remote(r),
            Ok(_) => Err(wrong_reply()),
            Err(e) => Err(Self::failed(&e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        match self.call(Call::Vote(rpc), &option).await {
            Ok(Reply::Vote(r)) => self.remote(r),
            Ok(_) => Err(wrong_reply()),
            Err(e) => Err(Self::failed(&e)),
        }
    }
}

/// Serves `raft`'s peers and clients on `listener` until the task is aborted: each
/// connection gets a task that answers its calls in order.
pub fn serve(raft: Raft<TypeConfig>, listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Aborting the server drops this set, which aborts every connection's task.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        // Out of descriptors, say: wait a little rather than spin.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let raft = raft.clone();
                    connections.spawn(async move {
                        // A connection that breaks or sends garbage is dropped; the peer
                        // reconnects.
                        let _ = answer(raft, stream).await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

async fn answer(raft: Raft<TypeConfig>, mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let call: Call = read_frame(&mut stream).await?;
        let reply = match call {
            Call::AppendEntries(rpc) => Reply::AppendEntries(raft.append_entries(rpc).await),
            Call::InstallSnapshot(rpc) => Reply::InstallSnapshot(raft.install_snapshot(rpc).await),
            Call::Vote(rpc) => Reply::Vote(raft.vote(rpc).await),
            Call::ClientWrite(request) => Reply::ClientWrite(raft.client_write(request).await),
            Call::Status => {
                let m = raft.metrics().borrow().clone();
                Reply::Status(Status {
                    id: m.id,
                    leader: m.current_leader,
                    last_applied: m.last_applied.map(|id| id.index),
                    last_log: m.last_log_index,
                })
            }
        };
        write_frame(&mut stream, &reply).await?;
    }
}

/// Sends writes to a cluster's leader: tries the node it last heard of, follows
/// "forward to leader" answers, and moves on to the next node when one does not answer.
///
/// Delivery is at least once: a write whose answer was lost (a timeout, a leader that died
/// after committing it) is sent again, and may then be applied twice. Both requests are
/// idempotent in their effect on the state: writing an item again stores the same data, and
/// removing it again changes nothing (the history shows the repeat).
pub struct Client {
    nodes: BTreeMap<NodeId, Connection>,
    leader: Option<NodeId>,
    timeout: Duration,
}

/// Why [`Client::write`] gave up.
#[derive(Debug)]
pub enum ClientError {
    /// No node accepted the write before the deadline; the last failure seen.
    Unavailable(String),
    /// The leader refused it (not a leadership matter).
    Refused(RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Unavailable(why) => write!(f, "no leader accepted the write: {why}"),
            ClientError::Refused(e) => write!(f, "the leader refused the write: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl Client {
    /// A client of the nodes `(id, "host:port")`; each call waits at most `timeout`.
    pub fn new(nodes: impl IntoIterator<Item = (NodeId, String)>, timeout: Duration) -> Client {
        Client {
            nodes: nodes
                .into_iter()
                .map(|(id, addr)| (id, Connection { addr, stream: None }))
                .collect(),
            leader: None,
            timeout,
        }
    }

    /// The node the client believes leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Asks node `id` where it is.
    pub async fn status(&mut self, id: NodeId) -> io::Result<Status> {
        let connection = self
            .nodes
            .get_mut(&id)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no node {id}")))?;
        match connection.call(&Call::Status, self.timeout).await {
            Ok(Reply::Status(status)) => Ok(status),
            Ok(_) => Err(io::Error::other("a reply to another call")),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    /// Writes `request` through the leader, trying until `deadline` passes. Returns once
    /// the entry is committed and applied on the leader.
    pub async fn write(
        &mut self,
        request: Request,
        deadline: Duration,
    ) -> Result<ClientWriteResponse<TypeConfig>, ClientError> {
        let start = tokio::time::Instant::now();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        let mut next = 0usize;
        let mut last_error = String::from("no node tried");
        while start.elapsed() < deadline {
            let target = match self.leader {
                Some(l) => l,
                None => {
                    let Some(&id) = ids.get(next % ids.len().max(1)) else {
                        return Err(ClientError::Unavailable("no nodes".into()));
                    };
                    next += 1;
                    id
                }
            };
            let Some(connection) = self.nodes.get_mut(&target) else {
                self.leader = None;
                continue;
            };
            match connection
                .call(&Call::ClientWrite(request.clone()), self.timeout)
                .await
            {
                Ok(Reply::ClientWrite(Ok(response))) => {
                    self.leader = Some(target);
                    return Ok(response);
                }
                Ok(Reply::ClientWrite(Err(e))) => {
                    let forward = e.forward_to_leader::<BasicNode>().map(|f| f.leader_id);
                    match forward {
                        Some(hint) => {
                            last_error = format!("node {target}: {e}");
                            self.leader = hint;
                            if hint.is_none() {
                                // An election is running.
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                        }
                        // A node shutting down: try another.
                        None if matches!(e, RaftError::Fatal(_)) => {
                            last_error = format!("node {target}: {e}");
                            self.leader = None;
                        }
                        None => return Err(ClientError::Refused(e)),
                    }
                }
                Ok(_) => {
                    last_error = format!("node {target}: a reply to another call");
                    self.leader = None;
                }
                Err(e) => {
                    last_error = format!("node {target}: {e}");
                    self.leader = None;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        Err(ClientError::Unavailable(last_error))
    }
}
