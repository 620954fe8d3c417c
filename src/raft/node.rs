//! A whole Raft node: mmlog storage, an openraft [`Raft`], and the TCP server for its peers
//! and clients.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, Config, Raft};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::network::{TcpNetwork, serve};
use super::{NodeId, TypeConfig};
use crate::events::EventStore;

/// A running node: its storage in one directory, its Raft, and its server on one address.
///
/// ```
/// # fn main() -> Result<(), mmlog::raft::StartError> {
/// # let dir = tempfile::tempdir()?;
/// use mmlog::raft::{Node, Request};
/// use mmlog::events::Consistency;
///
/// let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
/// rt.block_on(async {
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let node = Node::start(1, dir.path(), listener, Node::fast_failover_config()?).await?;
///     node.initialize_cluster(&[(1, node.addr().to_owned())]).await?;
///     node.raft().wait(None).current_leader(1, "elected").await?;
///     let id = uuid::Uuid::new_v4();
///     node.raft()
///         .client_write(Request::Write { writer_id: 1, item_id: id, data: "x".into() })
///         .await?;
///     assert_eq!(node.events().read(Consistency::Strong)?.data(&id), Some("x"));
///     node.stop().await;
///     Ok::<_, mmlog::raft::StartError>(())
/// })?;
/// # Ok(()) }
/// ```
pub struct Node {
    id: NodeId,
    addr: String,
    raft: Raft<TypeConfig>,
    events: Arc<EventStore>,
    server: JoinHandle<()>,
}

/// Why a node did not start.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

impl Node {
    /// Opens the storage in `dir` (retrying for a few seconds while a node that just
    /// stopped still holds it), starts Raft and serves `listener`.
    pub async fn start(
        id: NodeId,
        dir: impl AsRef<Path>,
        listener: TcpListener,
        config: Arc<Config>,
    ) -> Result<Node, StartError> {
        let addr = listener.local_addr()?.to_string();
        let dir = dir.as_ref();
        let mut attempts = 0;
        let (log, sm) = loop {
            match super::open(dir) {
                Ok(opened) => break opened,
                Err(crate::Error::Locked { .. }) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let events = sm.event_store();
        let raft = Raft::new(id, config, TcpNetwork::new(), log, sm).await?;
        let server = serve(raft.clone(), listener);
        Ok(Node {
            id,
            addr,
            raft,
            events,
            server,
        })
    }

    /// A configuration for a small cluster on a fast network: 50 ms heartbeats, elections
    /// after 150-300 ms of silence, a snapshot every 1,000 entries, 200 entries kept behind
    /// it.
    pub fn fast_failover_config() -> Result<Arc<Config>, StartError> {
        let config = Config {
            heartbeat_interval: 50,
            election_timeout_min: 150,
            election_timeout_max: 300,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 200,
            ..Config::default()
        };
        Ok(Arc::new(config.validate()?))
    }

    /// Makes `members` (id, address) the cluster's first membership. Call it on one node
    /// of a new cluster.
    pub async fn initialize_cluster(&self, members: &[(NodeId, String)]) -> Result<(), StartError> {
        let members: BTreeMap<NodeId, BasicNode> = members
            .iter()
            .map(|(id, addr)| (*id, BasicNode::new(addr)))
            .collect();
        self.raft.initialize(members).await?;
        Ok(())
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address it serves.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Its Raft.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Its event store, the replicated state as this node has applied it.
    pub fn events(&self) -> &Arc<EventStore> {
        &self.events
    }

    /// Stops serving and shuts Raft down. The storage closes once the last handle to the
    /// event store is dropped.
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = (&mut self.server).await;
        // Shutting down a node whose core already stopped only reports that it stopped.
        let _ = self.raft.shutdown().await;
    }
}

impl Drop for Node {
    /// Stops serving. (Raft itself stops with [`Node::stop`], or once every handle to it
    /// is dropped.)
    fn drop(&mut self) {
        self.server.abort();
    }
}
