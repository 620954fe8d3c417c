//! Replication through [openraft](https://docs.rs/openraft/0.9): mmlog as the durable log
//! and the state machine of a Raft node (feature `raft`).
//!
//! mmlog does not implement consensus. It is the storage underneath an openraft 0.9 node:
//!
//! - [`LogStore`] implements openraft's `RaftLogStorage` on one mmlog [`Log`](crate::Log):
//!   the vote, the committed log id and every entry are records of that log. Truncation and
//!   purge are records too; purge also writes a checkpoint so compaction frees the purged
//!   segments. It works for any openraft type configuration whose entries are serde types.
//! - [`EventStateMachine`] implements `RaftStateMachine` for the event store: each applied
//!   [`Request`] becomes a `DataWritten` or `DataRemoved` event in an
//!   [`EventStore`](crate::events::EventStore), and a snapshot is that store's checkpoint.
//! - [`network`] is a small TCP transport (`RaftNetworkFactory`) and server for nodes on a
//!   network, with client writes forwarded to the leader.
//!
//! Open both halves with [`open`]: the log in `<dir>/raft-log`, the state machine in
//! `<dir>/state` (the event store in `<dir>/state/events`).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! use std::collections::BTreeMap;
//! use mmlog::raft::{self, Request, TypeConfig};
//! use openraft::{BasicNode, Config, Raft};
//!
//! let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! rt.block_on(async {
//!     let (log_store, state_machine) = raft::open(dir.path())?;
//!     let events = state_machine.event_store();
//!     let config = std::sync::Arc::new(Config::default().validate()?);
//!     // A single node needs no network; a cluster uses `raft::network::TcpNetwork`.
//!     let network = raft::network::TcpNetwork::new();
//!     let node = Raft::<TypeConfig>::new(1, config, network, log_store, state_machine).await?;
//!     node.initialize(BTreeMap::from([(1, BasicNode::new("127.0.0.1:0"))])).await?;
//!     node.wait(None).current_leader(1, "elected").await?;
//!     let id = uuid::Uuid::new_v4();
//!     node.client_write(Request::Write { writer_id: 7, item_id: id, data: "hello".into() })
//!         .await?;
//!     let view = events.read(mmlog::events::Consistency::Strong)?;
//!     assert_eq!(view.data(&id), Some("hello"));
//!     node.shutdown().await?;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::Cursor;
use std::path::Path;

use openraft::{AnyError, BasicNode, ErrorSubject, ErrorVerb, StorageError, StorageIOError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod log_store;
pub mod network;
mod node;
mod state_machine;

pub use log_store::LogStore;
pub use node::{Node, StartError};
pub use state_machine::{EventStateMachine, MARK_EVERY, SnapshotBuilder};

/// Raft node ids in [`TypeConfig`].
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of a replicated event store: [`Request`]s in,
    /// [`Response`]s out, `u64` node ids, [`BasicNode`] addresses, tokio.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A change to the replicated event store. The client names the item, so that every node
/// appends the same event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Store `data` as item `item_id` (a new item, or a new version of it).
    Write {
        /// Who wrote it.
        writer_id: u32,
        /// The item.
        item_id: Uuid,
        /// Its data.
        data: String,
    },
    /// Remove item `item_id` (nothing happens if it is not live).
    Remove {
        /// Who removed it.
        writer_id: u32,
        /// The item.
        item_id: Uuid,
    },
}

/// What applying an entry did on the node that answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The sequence number of the event the entry became in that node's event store, if it
    /// was a [`Request`] (blank and membership entries make no event). Sequence numbers are
    /// local to a node: a node that installed a snapshot has a different history.
    pub event_seq: Option<u64>,
    /// Why the request made no event, if it was refused (its event does not fit in an
    /// event-store segment). Every node refuses it the same way.
    pub refused: Option<String>,
}

/// Opens (or creates) a node's storage in `dir`: the Raft log in `<dir>/raft-log` and the
/// event-store state machine in `<dir>/state`.
pub fn open(dir: impl AsRef<Path>) -> crate::Result<(LogStore<TypeConfig>, EventStateMachine)> {
    let dir = dir.as_ref();
    crate::storage::fs::create_dir_all(dir)
        .map_err(|e| crate::Error::io("create node directory", dir, e))?;
    let log = LogStore::open(dir.join("raft-log"))?;
    let sm = EventStateMachine::open(dir.join("state"))?;
    Ok((log, sm))
}

/// A record of the Raft log or of the state machine's marks: one byte of kind, then the
/// postcard encoding of `value`.
fn encode_record<T: Serialize>(kind: u8, value: &T) -> crate::Result<Vec<u8>> {
    let mut out = vec![kind];
    out.extend_from_slice(&postcard_bytes(value)?);
    Ok(out)
}

fn postcard_bytes<T: Serialize>(value: &T) -> crate::Result<Vec<u8>> {
    postcard::to_allocvec(value)
        .map_err(|e| crate::Error::invalid(format!("raft storage value does not encode: {e}")))
}

/// The body of record `seq`, decoded.
fn decode_body<T: serde::de::DeserializeOwned>(seq: u64, body: &[u8]) -> crate::Result<T> {
    postcard::from_bytes(body).map_err(|e| bad_record(seq, e))
}

/// Record `seq` of the Raft log or of the marks (or a file beside them) is not what it
/// should be.
fn bad_record(seq: u64, reason: impl fmt::Display) -> crate::Error {
    crate::Error::BadEvent {
        seq,
        reason: format!("raft storage: {reason}"),
    }
}

/// An mmlog error as openraft's storage error on `subject`.
fn storage_error<NID: openraft::NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
    e: impl fmt::Display,
) -> StorageError<NID> {
    StorageIOError::new(subject, verb, AnyError::error(e)).into()
}
