//! Model-based test: random sequences of appends, batches, zero-copy reservations (committed
//! or abandoned), syncs, reads from random positions and reopens, checked against the
//! simplest possible oracle, a `Vec` of what should be in the log.

use mmlog::{Durability, Log, Options};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Batch(Vec<usize>),
    Reserve { len: usize, commit: bool },
    Sync,
    ReadFrom(u64),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..600).prop_map(Op::Append),
        2 => prop::collection::vec(0usize..300, 1..6).prop_map(Op::Batch),
        2 => (0usize..300, any::<bool>()).prop_map(|(len, commit)| Op::Reserve { len, commit }),
        1 => Just(Op::Sync),
        2 => any::<u64>().prop_map(Op::ReadFrom),
        1 => Just(Op::Reopen),
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
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), opts()).unwrap();
        // One entry per sequence number: the payload, or None for an abandoned reservation.
        let mut model: Vec<Option<Vec<u8>>> = Vec::new();
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
                Op::Sync => log.sync().unwrap(),
                Op::ReadFrom(x) => {
                    let from = if model.is_empty() { 0 } else { x % (model.len() as u64 + 2) };
                    check_from(&log, &model, from);
                }
                Op::Reopen => {
                    log.close().unwrap();
                    log = Log::open(dir.path(), opts()).unwrap();
                    prop_assert!(log.recovery_report().is_clean(), "{:?}", log.recovery_report());
                }
            }
            prop_assert_eq!(log.last_seq(), (model.len() as u64).checked_sub(1));
        }
        check_from(&log, &model, 0);
    }
}
