//! Three mmlog nodes replicating an event store through openraft, on loopback.
//!
//! Each node is a `mmlog::raft::Node` with its own directory and port. Clients write through
//! the leader; the leader is killed mid-run, a new one is elected and takes writes; the killed
//! node restarts on its old directory and catches up (by snapshot if the others purged the
//! entries it missed). Every acknowledged write is then checked on every node, and again
//! after all three reopen their storage.
//!
//! ```text
//! cargo run --release --features raft --example raft_cluster -- [writes] [clients]
//! ```
//!
//! `writes` (default 3,000) are made before the kill and again after it, by `clients`
//! concurrent clients (default 4). `tests/raft.rs` runs the same scenario, smaller.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mmlog::events::Consistency;
use mmlog::raft::network::Client;
use mmlog::raft::{Node, NodeId, Request};
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

/// Any error, across tasks.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Writes acknowledged before the leader was killed, and their rate (per second).
    pub before_kill: (usize, f64),
    /// Latency of those writes: median and 99th percentile.
    pub latency_p50: Duration,
    /// See `latency_p50`.
    pub latency_p99: Duration,
    /// From the leader's kill to the first write acknowledged by the new leader.
    pub failover: Duration,
    /// The killed leader, and the one elected after it.
    pub leaders: (NodeId, NodeId),
    /// Writes acknowledged after the kill (removals included).
    pub after_kill: usize,
    /// From the restart of the killed node until it applied everything the leader had.
    pub catch_up: Duration,
    /// Whether the restarted node caught up by installing a snapshot.
    pub caught_up_by_snapshot: bool,
    /// Items live at the end, the same on every node.
    pub items: usize,
}

/// The state every acknowledged write says the store must have: item → data.
pub type Expected = BTreeMap<Uuid, String>;

async fn start_node(id: NodeId, root: &Path, addr: &str) -> Result<Node, BoxError> {
    let listener = TcpListener::bind(addr).await?;
    Node::start(
        id,
        root.join(format!("node-{id}")),
        listener,
        Node::fast_failover_config()?,
    )
    .await
}

async fn wait_for_leader(
    nodes: &BTreeMap<NodeId, Node>,
    timeout: Duration,
) -> Result<NodeId, BoxError> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        for node in nodes.values() {
            let leader = node.raft().metrics().borrow().current_leader;
            if let Some(l) = leader.filter(|l| nodes.contains_key(l)) {
                return Ok(l);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("no leader elected".into())
}

/// `count` writes by `clients` concurrent clients; every 8th write after the first few
/// removes an item the same client wrote earlier if `removals`. Returns the latencies.
pub async fn write_many(
    addrs: &[(NodeId, String)],
    clients: usize,
    count: usize,
    removals: bool,
    expected: &mut Expected,
) -> Result<Vec<Duration>, BoxError> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let addrs = addrs.to_vec();
        let per_client = count / clients + usize::from(c < count % clients);
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(addrs, Duration::from_secs(2));
            let mut acked: Vec<(Uuid, Option<String>)> = Vec::new();
            let mut latencies = Vec::with_capacity(per_client);
            let mut mine = Vec::new();
            for i in 0..per_client {
                let request = if removals && i % 8 == 7 && !mine.is_empty() {
                    let item_id: Uuid = mine.swap_remove(i % mine.len());
                    Request::Remove {
                        writer_id: c as u32,
                        item_id,
                    }
                } else {
                    let item_id = Uuid::new_v4();
                    mine.push(item_id);
                    Request::Write {
                        writer_id: c as u32,
                        item_id,
                        data: format!("client {c} write {i}"),
                    }
                };
                let start = Instant::now();
                client
                    .write(request.clone(), Duration::from_secs(20))
                    .await?;
                latencies.push(start.elapsed());
                acked.push(match request {
                    Request::Write { item_id, data, .. } => (item_id, Some(data)),
                    Request::Remove { item_id, .. } => (item_id, None),
                });
            }
            Ok::<_, BoxError>((acked, latencies))
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        let (acked, lat) = task.await??;
        for (id, data) in acked {
            match data {
                Some(d) => expected.insert(id, d),
                None => expected.remove(&id),
            };
        }
        latencies.extend(lat);
    }
    Ok(latencies)
}

/// Every node's state must be exactly `expected`.
fn check(nodes: &BTreeMap<NodeId, Node>, expected: &Expected) -> Result<(), BoxError> {
    for (id, node) in nodes {
        let view = node.events().read(Consistency::Strong)?;
        check_state(*id, view.state(), expected)?;
    }
    Ok(())
}

/// Node `id`'s `state` must be exactly `expected`.
pub fn check_state(
    id: NodeId,
    state: &mmlog::events::State,
    expected: &Expected,
) -> Result<(), BoxError> {
    if state.len() != expected.len() {
        return Err(format!(
            "node {id} holds {} items, {} acknowledged",
            state.len(),
            expected.len()
        )
        .into());
    }
    for (item, data) in expected {
        if state.data(item) != Some(data.as_str()) {
            return Err(format!("node {id} lost acknowledged item {item}").into());
        }
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the scenario in `root` (three node directories are made in it).
pub async fn run(root: &Path, writes: usize, clients: usize) -> Result<Report, BoxError> {
    let mut addrs = Vec::new();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        // Port 0 picks a free port; a restarted node binds the same one again.
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        drop(listener);
        nodes.insert(id, start_node(id, root, &addr).await?);
        addrs.push((id, addr));
    }
    if let Some(first) = nodes.get(&1) {
        first.initialize_cluster(&addrs).await?;
    }
    wait_for_leader(&nodes, Duration::from_secs(10)).await?;

    let mut expected = Expected::new();
    let start = Instant::now();
    let mut latencies = write_many(&addrs, clients, writes, false, &mut expected).await?;
    let rate = writes as f64 / start.elapsed().as_secs_f64();
    latencies.sort();

    // Kill the leader; time the first write the next one acknowledges.
    let old_leader = wait_for_leader(&nodes, Duration::from_secs(10)).await?;
    let killed = nodes
        .remove(&old_leader)
        .ok_or("the leader is not a node")?;
    let killed_last_log = killed.raft().metrics().borrow().last_log_index;
    let killed_at = Instant::now();
    killed.stop().await;
    let mut client = Client::new(addrs.clone(), Duration::from_millis(500));
    let item_id = Uuid::new_v4();
    let data = "first write after the kill".to_owned();
    client
        .write(
            Request::Write {
                writer_id: 99,
                item_id,
                data: data.clone(),
            },
            Duration::from_secs(20),
        )
        .await?;
    let failover = killed_at.elapsed();
    expected.insert(item_id, data);
    let new_leader = client.leader().ok_or("no leader acknowledged")?;

    write_many(&addrs, clients, writes, true, &mut expected).await?;
    let after_kill = writes + 1;

    // Restart the killed node on its directory and address; wait until it caught up.
    let restarted_at = Instant::now();
    let old_addr = addrs
        .iter()
        .find(|(id, _)| *id == old_leader)
        .map(|(_, a)| a.clone());
    let node = start_node(old_leader, root, &old_addr.ok_or("no address")?).await?;
    let (leader_applied, leader_purged) = nodes
        .get(&new_leader)
        .map(|n| {
            let m = n.raft().metrics().borrow().clone();
            (
                m.last_applied.map(|id| id.index),
                m.purged.map(|id| id.index),
            )
        })
        .ok_or("the new leader is not a node")?;
    node.raft()
        .wait(Some(Duration::from_secs(30)))
        .applied_index_at_least(leader_applied, "catch up")
        .await?;
    let catch_up = restarted_at.elapsed();
    // The leader no longer had the entries after the restarted node's log: it had to send
    // a snapshot.
    let caught_up_by_snapshot = leader_purged > killed_last_log;
    nodes.insert(old_leader, node);
    for node in nodes.values() {
        node.raft()
            .wait(Some(Duration::from_secs(30)))
            .applied_index_at_least(leader_applied, "apply everything")
            .await?;
    }
    check(&nodes, &expected)?;

    // Stop everything, reopen each node's storage alone: the same state.
    for (_, node) in std::mem::take(&mut nodes) {
        node.stop().await;
    }
    for id in 1..=3u64 {
        let dir = root.join(format!("node-{id}"));
        let mut attempts = 0;
        let (_, sm) = loop {
            match mmlog::raft::open(&dir) {
                Ok(opened) => break opened,
                Err(mmlog::Error::Locked { .. }) if attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let view = sm.event_store().read(Consistency::Strong)?;
        check_state(id, view.state(), &expected)?;
    }

    Ok(Report {
        before_kill: (writes, rate),
        latency_p50: percentile(&latencies, 0.50),
        latency_p99: percentile(&latencies, 0.99),
        failover,
        leaders: (old_leader, new_leader),
        after_kill,
        catch_up,
        caught_up_by_snapshot,
        items: expected.len(),
    })
}

#[allow(dead_code)] // `tests/raft.rs` includes this file for `run`.
fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let writes: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(3000);
    let clients: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(4)
        .max(1);
    let root = std::env::temp_dir().join(format!("mmlog-raft-cluster-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(&root, writes, clients));
    let _ = std::fs::remove_dir_all(&root);
    let r = result?;
    println!("three nodes on 127.0.0.1, durable appends (fsync on every node's log)");
    println!(
        "before the kill: {} writes by {clients} clients, {:.0} writes/s, latency p50 {:.2} ms, p99 {:.2} ms",
        r.before_kill.0,
        r.before_kill.1,
        r.latency_p50.as_secs_f64() * 1e3,
        r.latency_p99.as_secs_f64() * 1e3
    );
    println!(
        "killed leader {}; node {} took the first write {:.0} ms later",
        r.leaders.0,
        r.leaders.1,
        r.failover.as_secs_f64() * 1e3
    );
    println!(
        "after the kill: {} writes; node {} restarted and caught up in {:.0} ms{}",
        r.after_kill,
        r.leaders.0,
        r.catch_up.as_secs_f64() * 1e3,
        if r.caught_up_by_snapshot {
            " (with a snapshot)"
        } else {
            ""
        }
    );
    println!(
        "all {} items on every node, and again after reopening the storage",
        r.items
    );
    Ok(())
}
