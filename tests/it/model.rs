//! Model-based test: random sequences of appends, batches, zero-copy reservations (committed
//! or abandoned), syncs, reads from random positions and times, checkpoints, compactions into
//! the archive, reopens and simulated power cuts, checked against the simplest possible
//! oracle, a `Vec` of what should be in the log.

use std::time::Duration;

use mmlog::testing::PowerLoss;
use mmlog::{ArchiveMode, Durability, Log, Options, Retention};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Batch(Vec<usize>),
    Reserve { len: usize, commit: bool },
    Sync,
    ReadFrom(u64),
    ReadFromTime(u64),
    Checkpoint(u64),
    Compact,
    Reopen,
    PowerCut,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..600).prop_map(Op::Append),
        2 => prop::collection::vec(0usize..300, 1..6).prop_map(Op::Batch),
        2 => (0usize..300, any::<bool>()).prop_map(|(len, commit)| Op::Reserve { len, commit }),
        1 => Just(Op::Sync),
        2 => any::<u64>().prop_map(Op::ReadFrom),
        1 => any::<u64>().prop_map(Op::ReadFromTime),
        1 => any::<u64>().prop_map(Op::Checkpoint),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerCut),
    ]
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as usize * 31 + i * 7) as u8)
        .collect()
}

fn opts() -> Options {
    // Small segments so that rollovers, end markers and padding at segment ends all happen.
    Options::default()
        .segment_size(4096)
        .durability(Durability::Buffered)
        .index_interval(3)
        .retention(
            Retention::default()
                .keep_records(24)
                .archive(ArchiveMode::Move),
        )
}

/// `read_from_time(t)` for a time between two records' timestamps: the reader starts at the
/// first record whose timestamp is at or after `t`, and goes on like `read_from`.
fn check_from_time(log: &Log, model: &[Option<Vec<u8>>], x: u64) {
    let mut all = Vec::new();
    let mut r = log.read_from(0).expect("reader");
    while let Some(rec) = r.next() {
        let rec = rec.expect("record");
        all.push((rec.seq(), rec.timestamp()));
    }
    let Some(&(_, first)) = all.first() else {
        return;
    };
    let last = all.last().map_or(first, |&(_, t)| t);
    let span = last.duration_since(first).unwrap_or_default().as_nanos() as u64;
    let t = first + Duration::from_nanos(x % (span + 2));
    let want = all.iter().find(|&&(_, ts)| ts >= t).map(|&(seq, _)| seq);
    let mut r = log.read_from_time(t).expect("read_from_time");
    match (r.next(), want) {
        (Some(rec), Some(seq)) => {
            let rec = rec.expect("record");
            assert_eq!(
                rec.seq(),
                seq,
                "read_from_time({t:?}) started at the wrong record"
            );
            check_from(log, model, seq);
        }
        (None, None) => {}
        (got, want) => panic!(
            "read_from_time({t:?}): got {:?}, expected record {want:?}",
            got.map(|r| r.map(|r| r.seq()))
        ),
    }
}

fn checkpoint_data(seq: u64) -> Vec<u8> {
    format!("state through {seq}").into_bytes()
}

/// Reads from `from` to the end and compares with the oracle (`None` = abandoned slot).
fn check_from(log: &Log, model: &[Option<Vec<u8>>], from: u64) {
    let mut r = log.read_from(from).expect("reader");
    let mut expect = model
        .iter()
        .enumerate()
        .skip(from as usize)
        .filter_map(|(s, p)| Some((s as u64, p.clone()?)));
    while let Some(rec) = r.next() {
        let rec = rec.expect("record");
        let (seq, p) = expect.next().expect("a record the model does not have");
        assert_eq!(rec.seq(), seq);
        assert_eq!(rec.payload(), p.as_slice(), "payload of {seq}");
    }
    assert!(expect.next().is_none(), "the log is missing records");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_a_vec(ops in prop::collection::vec(op(), 1..80)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut generation = 0;
        let dir_of = |g: u32| tmp.path().join(format!("gen{g}"));
        let mut machine = PowerLoss::new(dir_of(0), 0).unwrap();
        let mut log = Log::open(dir_of(0), opts()).unwrap();
        // One entry per sequence number: the payload, or None for an abandoned reservation.
        let mut model: Vec<Option<Vec<u8>>> = Vec::new();
        // Sequence numbers below this are durable (Buffered: a sync, a checkpoint or a close).
        let mut durable = 0usize;
        let mut checkpoint: Option<u64> = None;
        for op in ops {
            match op {
                Op::Append(len) => {
                    let p = payload(model.len() as u64, len);
                    prop_assert_eq!(log.append(&p).unwrap(), model.len() as u64);
                    model.push(Some(p));
                }
                Op::Batch(lens) => {
                    let first = model.len() as u64;
                    let ps: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &l)| payload(first + i as u64, l)).collect();
                    let refs: Vec<&[u8]> = ps.iter().map(Vec::as_slice).collect();
                    prop_assert_eq!(log.append_batch(&refs).unwrap(), first);
                    model.extend(ps.into_iter().map(Some));
                }
                Op::Reserve { len, commit } => {
                    let p = payload(model.len() as u64, len);
                    let mut r = log.reserve(len).unwrap();
                    prop_assert_eq!(r.seq(), model.len() as u64);
                    r.payload_mut().copy_from_slice(&p);
                    if commit {
                        r.commit().unwrap();
                        model.push(Some(p));
                    } else {
                        drop(r);
                        model.push(None);
                    }
                }
                Op::Sync => {
                    log.sync().unwrap();
                    durable = model.len();
                }
                Op::ReadFrom(x) => {
                    let from = if model.is_empty() { 0 } else { x % (model.len() as u64 + 2) };
                    check_from(&log, &model, from);
                }
                Op::ReadFromTime(x) => check_from_time(&log, &model, x),
                Op::Checkpoint(x) => {
                    // Only at a record that exists (an abandoned reservation has no record).
                    let Some(seq) = log.last_seq().map(|last| x % (last + 1)) else { continue };
                    if model[seq as usize].is_none() {
                        continue;
                    }
                    log.checkpoint(seq, &checkpoint_data(seq)).unwrap();
                    durable = durable.max(seq as usize + 1);
                    checkpoint = checkpoint.max(Some(seq));
                    let cp = log.latest_checkpoint().unwrap().expect("a checkpoint");
                    prop_assert_eq!(cp.seq(), checkpoint.unwrap_or(0));
                    let want = checkpoint_data(cp.seq());
                    prop_assert_eq!(cp.data(), want.as_slice());
                }
                Op::Compact => {
                    log.compact().unwrap();
                }
                Op::Reopen => {
                    log.close().unwrap();
                    durable = model.len();
                    log = Log::open(dir_of(generation), opts()).unwrap();
                    prop_assert!(log.recovery_report().is_clean(), "{:?}", log.recovery_report());
                }
                Op::PowerCut => {
                    generation += 1;
                    machine.crash_now(dir_of(generation)).unwrap();
                    drop(log);
                    machine = PowerLoss::new(dir_of(generation), u64::from(generation)).unwrap();
                    log = Log::open(dir_of(generation), opts()).unwrap();
                    // What survived is a prefix of the model, holding everything durable.
                    let cut = log.last_seq().map_or(0, |s| s as usize + 1);
                    let durable_records = model[..durable].iter().filter(|p| p.is_some()).count();
                    let kept = model[..cut.min(model.len())].iter().filter(|p| p.is_some()).count();
                    prop_assert!(cut <= model.len(), "records after the last append: {cut}");
                    prop_assert!(kept >= durable_records, "lost durable records: cut {cut}, durable {durable}");
                    model.truncate(cut);
                    durable = model.len();
                    check_from(&log, &model, 0);
                    if let Some(seq) = checkpoint {
                        let cp = log.latest_checkpoint().unwrap().expect("the checkpoint survives");
                        prop_assert!(cp.seq() >= seq);
                    }
                }
            }
            prop_assert_eq!(log.last_seq(), (model.len() as u64).checked_sub(1));
        }
        check_from(&log, &model, 0);
    }
}
