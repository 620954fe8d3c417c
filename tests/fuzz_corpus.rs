//! A cheap stand-in for fuzzing inside `cargo test`: the fuzz targets' property checks
//! (fuzz/src/lib.rs, included below) run over a few hundred deterministic pseudo-random and
//! structured inputs per target, and over the files in `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` when those directories exist (a crash found by the fuzzer is
//! kept by copying its artifact into `fuzz/regressions/<target>/`).

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

use mmlog::format::consumer_file::{self, ConsumerPosition};
use mmlog::format::frame::{self, Decoded, FrameKind};
use mmlog::format::segment_header::{SEAL_OFFSET, SEGMENT_HEADER_LEN, Seal, SegmentHeader};
use mmlog::format::{archive_file, checkpoint};

/// SplitMix64: small, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max) as usize;
        self.bytes(len)
    }

    /// One random damage: a bit flip, a byte overwritten, a cut, or bytes appended.
    fn damage(&mut self, mut b: Vec<u8>) -> Vec<u8> {
        if b.is_empty() {
            return self.bytes(8);
        }
        let at = self.below(b.len() as u64) as usize;
        match self.below(4) {
            0 => b[at] ^= 1 << self.below(8),
            1 => b[at] = self.next() as u8,
            2 => b.truncate(at),
            _ => {
                let extra = self.some_bytes(24);
                b.extend_from_slice(&extra);
            }
        }
        b
    }
}

/// Files kept for `target` by the fuzzer (corpus) or by hand (regressions).
fn kept_inputs(target: &str) -> Vec<Vec<u8>> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.is_file()) {
            out.push(std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())));
        }
    }
    out
}

/// A record frame.
fn record(seq: u64, ts: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; frame::frame_len(payload.len() as u64) as usize];
    frame::encode_record(&mut b, seq, ts, payload).expect("encode_record");
    b
}

/// A padding frame reserving `len` payload bytes (whatever they hold).
fn padding(seq: u64, ts: u64, len: u32, rng: &mut Rng) -> Vec<u8> {
    let mut b = rng.bytes(frame::frame_len(u64::from(len)) as usize);
    let lk = frame::len_kind(FrameKind::Padding, len);
    let st = frame::seq_ts_bytes(seq, ts);
    b[..8].copy_from_slice(&frame::commit_word(lk, frame::padding_crc(lk, &st)).to_le_bytes());
    b[8..24].copy_from_slice(&st);
    b
}

/// A run of valid frames (records, now and then padding) with dense sequence numbers.
fn frames(rng: &mut Rng, first_seq: u64, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..count as u64 {
        let ts = rng.next() >> 1;
        let len = rng.below(48) as usize;
        if rng.below(6) == 0 {
            out.extend(padding(first_seq + i, ts, len as u32, rng));
        } else {
            out.extend(record(first_seq + i, ts, &rng.bytes(len)));
        }
    }
    out
}

fn frame_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(1);
    let mut inputs = Vec::new();
    for _ in 0..80 {
        let len = rng.below(200) as usize;
        inputs.push(rng.bytes(len));
    }
    for _ in 0..80 {
        let (seq, n) = (rng.next() >> 1, rng.below(6) as usize);
        inputs.push(frames(&mut rng, seq, n));
    }
    for _ in 0..120 {
        let (seq, n) = (rng.below(1000), 1 + rng.below(4) as usize);
        let clean = frames(&mut rng, seq, n);
        inputs.push(rng.damage(clean));
    }
    // Commit words of every kind with hostile lengths, and the end marker, followed by junk.
    for kind in 0..4u32 {
        for len in [0, 1, 7, 8, 100, frame::PAYLOAD_LEN_MAX as u32] {
            let lk = (kind << frame::LEN_BITS) | len;
            let mut b = frame::commit_word(lk, rng.next() as u32)
                .to_le_bytes()
                .to_vec();
            b.extend(rng.some_bytes(64));
            inputs.push(b);
        }
    }
    let mut end = frame::END_OF_SEGMENT_WORD.to_le_bytes().to_vec();
    inputs.push(end.clone());
    end[7] ^= 1;
    inputs.push(end);
    // A record whose padding bytes are not zero (accepted: readers ignore padding).
    let mut r = record(3, 4, b"hi!");
    r[30] = 0xAA;
    inputs.push(r);
    inputs
}

fn header_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(2);
    let mut inputs = vec![vec![0u8; 128], vec![0u8; 63]];
    for _ in 0..80 {
        let len = rng.below(160) as usize;
        inputs.push(rng.bytes(len));
    }
    for i in 0..200 {
        let h = SegmentHeader {
            segment_id: rng.next(),
            capacity: rng.next(),
            base_seq: rng.next(),
            created_ns: rng.next(),
        };
        let seal = Seal {
            record_count: rng.next(),
            end_offset: rng.next(),
            first_ts: rng.next(),
            max_ts: rng.next(),
        };
        let mut b = vec![0u8; SEGMENT_HEADER_LEN];
        b[..SEAL_OFFSET].copy_from_slice(&h.encode());
        if i % 2 == 0 {
            b[SEAL_OFFSET..].copy_from_slice(&seal.encode());
        }
        inputs.push(if i % 3 == 0 { b } else { rng.damage(b) });
    }
    // A different version; non-zero reserved bytes under a valid CRC.
    let mut b = SegmentHeader {
        segment_id: 1,
        capacity: 4096,
        base_seq: 2,
        created_ns: 3,
    }
    .encode()
    .to_vec();
    let mut v2 = b.clone();
    v2[8] = 2;
    inputs.push(v2);
    b[50] = 1;
    let crc = mmlog::format::crc::checksum(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    inputs.push(b);
    inputs
}

fn checkpoint_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(3);
    let mut inputs = Vec::new();
    for _ in 0..80 {
        let len = rng.below(120) as usize;
        inputs.push(rng.bytes(len));
    }
    for i in 0..220 {
        let blob = rng.some_bytes(80);
        let mut b = checkpoint::encode(rng.next(), rng.next(), &blob);
        if i % 4 == 1 {
            let extra = rng.some_bytes(16);
            b.extend([0xA5].iter().chain(&extra));
        }
        inputs.push(if i % 3 == 0 { b } else { rng.damage(b) });
    }
    // `header_len` other than 48 under a valid CRC.
    let mut b = checkpoint::encode(5, 6, b"blob");
    b[12] = 7;
    let crc = mmlog::format::crc::checksum(&b[..44]);
    b[44..48].copy_from_slice(&crc.to_le_bytes());
    inputs.push(b);
    inputs
}

/// Inputs in `segment_scan`'s layout: a flags byte, an optional 32-byte seal, the body.
fn segment_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(4);
    let mut inputs = vec![vec![], vec![0], vec![1], vec![0xFF; 40]];
    for i in 0..120u64 {
        let sealed = i % 4 == 3;
        let fix = if i % 5 == 0 { rng.below(64) as u8 } else { 0 };
        let mut input = vec![(fix << 2) | u8::from(sealed)];
        if sealed {
            for _ in 0..4 {
                input.extend(rng.below(4096).to_le_bytes());
            }
        }
        let n = rng.below(8) as usize;
        let mut body = match i % 3 {
            0 => rng.some_bytes(400),
            _ => frames(&mut rng, 0, n),
        };
        match rng.below(4) {
            0 => body.extend(frame::END_OF_SEGMENT_WORD.to_le_bytes()),
            1 => body.extend(vec![0u8; 8 * rng.below(8) as usize]),
            _ => {}
        }
        if rng.below(3) == 0 {
            body.extend(rng.some_bytes(64));
        }
        if i % 2 == 1 {
            body = rng.damage(body);
        }
        input.extend(body);
        inputs.push(input);
    }
    inputs
}

/// Consumer position files and archive headers: valid, damaged, and with bad fields under a
/// valid CRC (both kinds go through both decoders).
fn small_files_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(6);
    let mut inputs = vec![vec![], vec![0u8; 40], vec![0u8; 48]];
    for _ in 0..60 {
        let len = rng.below(100) as usize;
        inputs.push(rng.bytes(len));
    }
    for i in 0..120 {
        let pos = consumer_file::encode(ConsumerPosition {
            next_seq: rng.next(),
            updated_ns: rng.next(),
        })
        .to_vec();
        inputs.push(if i % 3 == 0 { pos } else { rng.damage(pos) });
    }
    for i in 0..120 {
        let block = rng.some_bytes(40);
        let raw_len = if i % 5 == 0 {
            SEGMENT_HEADER_LEN as u64
        } else {
            rng.next()
        };
        let mut h = archive_file::encode_header(raw_len, &block).to_vec();
        if i % 4 == 1 {
            h.extend(rng.some_bytes(200));
        }
        inputs.push(if i % 3 == 0 { h } else { rng.damage(h) });
    }
    // Fields the CRC cannot vouch for: a version 2 file, non-zero reserved bytes, another codec,
    // a raw_len shorter than a segment header.
    let pos = consumer_file::encode(ConsumerPosition {
        next_seq: 1,
        updated_ns: 2,
    });
    for (at, value) in [(8, 2), (12, 1), (36, 1)] {
        let mut b = pos;
        b[at] = value;
        let crc = mmlog::format::crc::checksum(&b[..consumer_file::CRC_OFFSET]);
        b[consumer_file::CRC_OFFSET..consumer_file::CRC_OFFSET + 4]
            .copy_from_slice(&crc.to_le_bytes());
        inputs.push(b.to_vec());
    }
    inputs.push(archive_file::encode_header(127, b"block").to_vec());
    inputs.push(archive_file::encode_header(0, &[]).to_vec());
    let arz = archive_file::encode_header(4096, b"block");
    for (at, value) in [(8, 2), (12, 2), (12, 0), (36, 1), (40, 1), (43, 0x80)] {
        let mut b = arz;
        b[at] = value;
        let crc = mmlog::format::crc::checksum(&b[..archive_file::HEADER_CRC_OFFSET]);
        b[archive_file::HEADER_CRC_OFFSET..].copy_from_slice(&crc.to_le_bytes());
        inputs.push(b.to_vec());
    }
    inputs
}

/// Inputs in `archive_open`'s layout: the archive file, flags, splice offset, bytes.
fn archive_inputs() -> Vec<Vec<u8>> {
    use checks::{ARCHIVE_FIX_CRCS, ARCHIVE_FIX_LEN, ARCHIVE_SPLICE, ARCHIVE_TRUNCATE};
    let files = checks::archived_files();
    let mut rng = Rng(7);
    let input = |file: usize, flags: u8, offset: usize, bytes: &[u8]| {
        let mut b = vec![file as u8, flags];
        b.extend((offset as u16).to_le_bytes());
        b.extend_from_slice(bytes);
        b
    };
    let mut inputs = vec![vec![], vec![0, 1, 0]];
    for (k, f) in files.iter().enumerate() {
        // Unchanged, with or without its CRCs recomputed.
        inputs.push(input(k, ARCHIVE_SPLICE, 0, &[]));
        inputs.push(input(k, ARCHIVE_SPLICE | ARCHIVE_FIX_CRCS, 0, &[]));
        inputs.push(input(k, 0, 0, f));
        // Empty, cut inside the headers, cut inside the block (with and without a fixed length).
        inputs.push(input(k, 0, 0, &[]));
        for cut in [40, 100, 176, f.len() / 2, f.len() - 1] {
            inputs.push(input(k, ARCHIVE_SPLICE | ARCHIVE_TRUNCATE, cut, &[]));
            let fix = ARCHIVE_SPLICE | ARCHIVE_TRUNCATE | ARCHIVE_FIX_LEN | ARCHIVE_FIX_CRCS;
            inputs.push(input(k, fix, cut, &[]));
        }
        // Bytes appended after the block.
        let tail = rng.bytes(16);
        inputs.push(input(k, ARCHIVE_SPLICE, f.len(), &tail));
        inputs.push(input(
            k,
            ARCHIVE_SPLICE | ARCHIVE_FIX_LEN | ARCHIVE_FIX_CRCS,
            f.len(),
            &tail,
        ));
        // Bit flips, anywhere (caught by a CRC) and under recomputed CRCs.
        for i in 0..24 {
            let at = if i < 8 {
                rng.below(176) as usize
            } else {
                176 + rng.below(f.len() as u64 - 176) as usize
            };
            let flipped = [f[at] ^ (1 << rng.below(8))];
            let flags = if i % 2 == 0 {
                ARCHIVE_SPLICE
            } else {
                ARCHIVE_SPLICE | ARCHIVE_FIX_CRCS
            };
            inputs.push(input(k, flags, at, &flipped));
        }
        // Header fields rewritten under recomputed CRCs: raw_len, compressed_len, segment id,
        // capacity, base_seq, the seal's record count and end offset.
        let fields: [(usize, u64); 16] = [
            (16, 128),
            (16, f.len() as u64),
            (16, 4096 + 8),
            (24, 0),
            (24, 1 << 40),
            (48 + 16, 7),
            (48 + 24, 4088),
            (48 + 24, 4100),
            (48 + 24, 1 << 20),
            (48 + 24, u64::MAX),
            (48 + 32, u64::MAX - 5),
            (48 + 24, 256),
            (48 + 32, 1),
            (48 + 64, 1),
            (48 + 64, 200),
            (48 + 72, 128),
        ];
        for (at, value) in fields {
            let flags = ARCHIVE_SPLICE | ARCHIVE_FIX_CRCS;
            inputs.push(input(k, flags, at, &value.to_le_bytes()));
        }
        // Random bytes over the block under recomputed CRCs: the LZ4 decoder's input.
        for _ in 0..6 {
            let at = 176 + rng.below(f.len() as u64 - 176) as usize;
            let junk = rng.some_bytes(24);
            inputs.push(input(k, ARCHIVE_SPLICE | ARCHIVE_FIX_CRCS, at, &junk));
        }
        // Random bytes as the whole file.
        inputs.push(input(k, 0, 0, &rng.some_bytes(400)));
    }
    inputs
}

/// A DataWritten event (`writer` below 128, `data` shorter than 128 bytes), in the envelope
/// `src/events/event.rs` documents.
fn written_event(writer: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let mut e = vec![1, 1, writer & 0x7F];
    e.extend_from_slice(&[id % 8; 16]);
    e.push(data.len() as u8);
    e.extend_from_slice(data);
    e
}

/// A valid snapshot blob of a few items (the newest checkpoint of a real store).
fn snapshot_blob(items: u8) -> Vec<u8> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store =
        mmlog::events::EventStore::open(tmp.path(), mmlog::Options::default()).expect("open");
    for i in 0..items {
        store
            .write(u32::from(i), format!("item {i}"))
            .expect("write");
    }
    store.snapshot().expect("snapshot");
    store.close().expect("close");
    let log = mmlog::Log::open(tmp.path(), mmlog::Options::default()).expect("open log");
    let blob = log
        .latest_checkpoint()
        .expect("checkpoint")
        .expect("one")
        .data()
        .to_vec();
    log.close().expect("close");
    blob
}

fn event_store_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(8);
    let mut out = Vec::new();
    // Scripted events, with and without a real snapshot halfway.
    for i in 0..24 {
        let count = 1 + rng.below(40) as u8;
        let mut input = vec![if i % 2 == 0 { 0b010 } else { 0b110 }, count];
        input.extend(rng.bytes(3 * usize::from(count)));
        out.push(input);
    }
    // Raw records: well-formed events, damaged ones, garbage.
    for i in 0..24 {
        let count = 1 + rng.below(20) as u8;
        let mut input = vec![0, count];
        for _ in 0..count {
            let data: Vec<u8> = rng.some_bytes(12).iter().map(|b| b'a' + b % 26).collect();
            let mut record = written_event(rng.next() as u8, rng.next() as u8, &data);
            if i % 3 == 1 && rng.below(4) == 0 {
                record = rng.damage(record);
            } else if i % 3 == 2 {
                record = rng.some_bytes(30);
            }
            input.push(record.len() as u8);
            input.extend(record);
        }
        out.push(input);
    }
    // Foreign snapshots over scripted events: valid tables, damaged ones, version 1, garbage.
    let valid = snapshot_blob(5);
    for i in 0..24 {
        let count = 1 + rng.below(10) as u8;
        let mut input = vec![0b011, count];
        input.extend(rng.bytes(3 * usize::from(count)));
        let blob = match i % 4 {
            0 => valid.clone(),
            1 => rng.damage(valid.clone()),
            2 => [b"MMEV\x01".as_slice(), &rng.some_bytes(40)].concat(),
            _ => rng.some_bytes(120),
        };
        input.extend(blob);
        out.push(input);
    }
    out
}

#[test]
fn frame_decode() {
    let inputs = frame_inputs();
    let frames = inputs
        .iter()
        .filter(|b| matches!(frame::decode_at(b, 0), Ok(Decoded::Frame(_))))
        .count();
    assert!(
        frames >= 100,
        "only {frames} inputs start with a valid frame"
    );
    for input in inputs.iter().chain(&kept_inputs("frame_decode")) {
        checks::frame_decode(input);
    }
}

#[test]
fn segment_header_decode() {
    let inputs = header_inputs();
    let valid = inputs
        .iter()
        .filter(|b| SegmentHeader::decode(b).is_ok())
        .count();
    let sealed = inputs.iter().filter(|b| Seal::decode(b).is_some()).count();
    assert!(
        valid >= 60 && sealed >= 30,
        "{valid} valid headers, {sealed} seals"
    );
    for input in inputs.iter().chain(&kept_inputs("segment_header_decode")) {
        checks::segment_header_decode(input);
    }
}

#[test]
fn checkpoint_decode() {
    let inputs = checkpoint_inputs();
    let valid = inputs
        .iter()
        .filter(|b| checkpoint::decode(b).is_ok())
        .count();
    assert!(valid >= 70, "only {valid} valid checkpoints");
    for input in inputs.iter().chain(&kept_inputs("checkpoint_decode")) {
        checks::checkpoint_decode(input);
    }
}

#[test]
fn segment_scan() {
    let summaries: Vec<checks::ScanSummary> = segment_inputs()
        .iter()
        .map(|input| checks::segment_scan(input))
        .collect();
    let count = |f: fn(&checks::ScanSummary) -> bool| summaries.iter().filter(|s| f(s)).count();
    let read = count(|s| s.records_read >= 2);
    let truncated = count(|s| s.truncated);
    let sealed_opened = count(|s| s.sealed && s.opened);
    let sealed_refused = count(|s| s.sealed && !s.opened);
    let appended = count(|s| s.appended);
    eprintln!(
        "{} inputs: {read} read >= 2 records, {truncated} truncated, sealed {sealed_opened} \
         opened / {sealed_refused} refused, {appended} appended",
        summaries.len()
    );
    assert!(read >= 20 && truncated >= 10 && sealed_opened >= 5 && appended >= 60);
    for input in kept_inputs("segment_scan") {
        checks::segment_scan(&input);
    }
}

#[test]
fn small_files_decode() {
    let inputs = small_files_inputs();
    let positions = inputs
        .iter()
        .filter(|b| consumer_file::decode(b).is_ok())
        .count();
    let headers = inputs
        .iter()
        .filter(|b| archive_file::decode_header(b).is_ok())
        .count();
    assert!(
        positions >= 40 && headers >= 40,
        "{positions} valid position files, {headers} valid archive headers"
    );
    for input in inputs.iter().chain(&kept_inputs("small_files_decode")) {
        checks::small_files_decode(input);
    }
}

#[test]
fn archive_open() {
    let summaries: Vec<checks::ArchiveSummary> = archive_inputs()
        .iter()
        .map(|input| checks::archive_open(input))
        .collect();
    let count = |f: fn(&checks::ArchiveSummary) -> bool| summaries.iter().filter(|s| f(s)).count();
    let unchanged = count(|s| s.unchanged);
    let damaged = count(|s| s.damaged);
    let listed_unclean = count(|s| s.listed && !s.clean);
    let changed_clean = count(|s| !s.unchanged && s.clean);
    let partial = count(|s| s.read_failed && s.records_read > 0);
    eprintln!(
        "{} inputs: {unchanged} unchanged, {damaged} named damaged, {listed_unclean} listed \
         but failing verification, {changed_clean} changed but clean, {partial} read in part",
        summaries.len()
    );
    assert!(unchanged >= 9 && damaged >= 60 && listed_unclean >= 20 && partial >= 40);
    for input in kept_inputs("archive_open") {
        checks::archive_open(&input);
    }
}

fn log_ops_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng(9);
    let mut out = Vec::new();
    for i in 0..40u8 {
        let len = 20 + rng.below(120) as usize;
        let mut input = vec![i % 2];
        input.extend(rng.bytes(len));
        out.push(input);
    }
    // Mostly appends, then a power cut armed inside the next operations.
    for i in 0..20u8 {
        let mut input = vec![i % 2];
        for _ in 0..30 {
            input.extend([0, rng.below(256) as u8]);
        }
        input.extend([9, i, 0, 40, 3, 2, 1, 2, 3, 4, 4, 0, 7, 5, 7]);
        out.push(input);
    }
    out
}

#[test]
fn log_ops() {
    let summaries: Vec<checks::LogOpsSummary> = log_ops_inputs()
        .iter()
        .map(|input| checks::log_ops(input))
        .collect();
    let crashes: usize = summaries.iter().map(|s| s.crashes).sum();
    let inside: usize = summaries.iter().map(|s| s.crashes_inside_ops).sum();
    let records: u64 = summaries.iter().map(|s| s.records_checked).sum();
    eprintln!(
        "{} inputs: {crashes} power cuts ({inside} inside an operation), {records} records \
         checked against the model",
        summaries.len()
    );
    assert!(crashes >= 40 && inside >= 10 && records >= 500);
    for input in kept_inputs("log_ops") {
        checks::log_ops(&input);
    }
}

#[test]
fn event_store_open() {
    let summaries: Vec<checks::EventStoreSummary> = event_store_inputs()
        .iter()
        .map(|input| checks::event_store_open(input))
        .collect();
    let count =
        |f: fn(&checks::EventStoreSummary) -> bool| summaries.iter().filter(|s| f(s)).count();
    let modelled = count(|s| s.checked_against_model);
    let modelled_raw = count(|s| s.checked_against_model && !s.scripted);
    let hostile_opened = count(|s| s.hostile_snapshot && s.opened);
    let hostile_refused = count(|s| s.hostile_snapshot && !s.opened);
    eprintln!(
        "{} inputs: {modelled} checked against the model ({modelled_raw} from raw records), \
         foreign snapshots: {hostile_opened} opened, {hostile_refused} refused",
        summaries.len()
    );
    assert!(modelled >= 24 && modelled_raw >= 5 && hostile_opened >= 6 && hostile_refused >= 6);
    for input in kept_inputs("event_store_open") {
        checks::event_store_open(&input);
    }
}

/// `fix_frames` turns a body of arbitrary commit words into valid frames, which is what lets the
/// fuzzer reach deep into recovery; make sure it does.
#[test]
fn fix_frames_makes_valid_frames() {
    let mut rng = Rng(5);
    let mut file = vec![0u8; SEGMENT_HEADER_LEN];
    for i in 0..5u64 {
        let kind = if i == 2 {
            FrameKind::Padding
        } else {
            FrameKind::Record
        };
        let len = rng.below(40) as u32;
        let mut f = rng.bytes(frame::frame_len(u64::from(len)) as usize);
        f[frame::LEN_KIND_OFFSET..frame::LEN_KIND_OFFSET + 4]
            .copy_from_slice(&frame::len_kind(kind, len).to_le_bytes());
        file.extend(f);
    }
    file.extend([0u8; 16]);
    checks::fix_frames(&mut file, 4);
    let (mut offset, mut seq) = (SEGMENT_HEADER_LEN, 0);
    while let Ok(Decoded::Frame(f)) = frame::decode_at(&file, offset) {
        assert_eq!(f.seq, seq);
        offset += f.frame_len as usize;
        seq += 1;
    }
    assert_eq!(seq, 4, "the first four frames are valid, the fifth is not");
}

/// Writes the deterministic inputs above as the fuzzer's seed corpus, into
/// `$MMLOG_FUZZ_SEED_DIR/<target>/seed-NNNN` (`.ci/fuzz-smoke.sh` runs it with
/// `MMLOG_FUZZ_SEED_DIR=fuzz/corpus`): the fuzzer then starts from valid headers, frames, seals
/// and checkpoints instead of having to forge their CRCs first.
#[test]
#[ignore = "writes files; run by .ci/fuzz-smoke.sh"]
fn write_seed_corpus() {
    let dir = std::env::var_os("MMLOG_FUZZ_SEED_DIR").expect("MMLOG_FUZZ_SEED_DIR is not set");
    let sets = [
        ("frame_decode", frame_inputs()),
        ("segment_header_decode", header_inputs()),
        ("checkpoint_decode", checkpoint_inputs()),
        ("segment_scan", segment_inputs()),
        ("small_files_decode", small_files_inputs()),
        ("archive_open", archive_inputs()),
        ("event_store_open", event_store_inputs()),
        ("log_ops", log_ops_inputs()),
    ];
    for (target, inputs) in sets {
        let d = Path::new(&dir).join(target);
        std::fs::create_dir_all(&d).expect("create seed dir");
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(d.join(format!("seed-{i:04}")), input).expect("write seed");
        }
    }
}
