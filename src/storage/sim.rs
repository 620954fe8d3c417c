//! Simulated power loss and injected I/O faults: the seam crash tests use (mmlog's own, and its
//! users' through [`crate::testing`]).
//!
//! A process crash (`SIGKILL`) keeps the page cache, so it never shows what an OS crash or a
//! power cut leaves behind. This module does: every storage operation mmlog performs on a log
//! directory passes through [`before`], and every successful sync reports what it covered
//! through [`synced_data`], [`synced_file`] or [`synced_dir`]. A registered [`Sim`] keeps,
//! beside the live files, a ledger of the **durable image**:
//!
//! - for every file, the length and bytes its syncs covered, captured the moment each sync
//!   returned (`msync` / `fdatasync` of a range, `fsync` of a whole file). Files are known by
//!   inode number, with a fresh key at each creation, since a number is reused once its file
//!   is gone;
//! - for the directory tree, every version of its names since the last directory `fsync`
//!   (one after each create, rename or removal).
//!
//! At a simulated crash ([`Sim::crash_into`]) it writes a new directory holding what a power
//! cut could leave, chosen with a seeded generator:
//!
//! - the names are one of those versions: the names as of the last directory `fsync` plus a
//!   prefix of the changes after it. This is what a journaling file system (ext4, XFS)
//!   guarantees: metadata changes reach the disk in order, a rename is atomic, and an
//!   `fsync` commits every change before it;
//! - a file whose length changed since its last sync has either length;
//! - a page whose live bytes differ from the durable ones is kept as it was synced, taken
//!   from the live file (written back on its own), or **torn**: each of its 512-byte sectors
//!   from one or the other. Per crash, one of three regimes decides: no unsynced page
//!   survives, every one does (what a process crash leaves), or each independently.
//!
//! Capturing the live bytes at a sync is sound even while other threads write: the kernel
//! may write a page back at any moment, so any bytes the page held then are bytes a crash
//! could leave on disk.
//!
//! After the crash the machine is off: every later storage operation under the simulated
//! directory fails with an I/O error, and so does one that was still running when the crash
//! came (a sync that returns after it never finished), so the live log poisons itself and
//! acknowledges nothing more, and everything acknowledged before is in the image. A fault
//! plan ([`Sim::fail_op`]) fails the N-th operation instead, once or from then on.
//!
//! Disarmed (no simulation registered), each hook costs one relaxed atomic load; none is on
//! the append or read path.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const PAGE: usize = 4096;
const SECTOR: usize = 512;

/// How many simulations are registered: the hooks' fast path.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static SIMS: Mutex<Vec<Arc<Sim>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Arc<Sim>>> {
    SIMS.lock().unwrap_or_else(|p| p.into_inner())
}

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// Only the chosen operation fails.
    Once,
    /// The chosen operation and every one after it fail.
    Persistent,
}

/// Which unsynced pages survive a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Regime {
    /// None: the disk holds exactly what the syncs covered.
    SyncedOnly,
    /// All of them, as after a process crash.
    Everything,
    /// Each page independently: kept as synced, written back, or torn.
    Mixed,
}

/// What a crash image holds, for the test's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ImageStats {
    pub(crate) files: u64,
    pub(crate) pages_differing: u64,
    pub(crate) pages_live: u64,
    pub(crate) pages_torn: u64,
    /// Name changes (creates, renames, removals) after the version the image holds.
    pub(crate) name_changes_lost: u64,
}

/// A name's target: a directory, or one incarnation of a file (an inode number is reused
/// once its file is gone, so files are told apart by a key given at each creation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    /// The file's key (the inode number as listed, until [`names_of`] maps it; for
    /// directories, the inode number).
    key: u64,
    is_dir: bool,
}

/// A crash that happened: where its image went, and what it holds (or why it could not be
/// written).
#[derive(Clone, Debug)]
pub(crate) struct Crash {
    pub(crate) image: PathBuf,
    pub(crate) outcome: Result<ImageStats, String>,
}

#[derive(Default)]
struct State {
    /// Durable contents (the bytes its syncs left) by file key.
    files: HashMap<u64, Vec<u8>>,
    /// The key of the file each inode number currently belongs to.
    keys: HashMap<u64, u64>,
    next_key: u64,
    /// The tree's names as of the last directory `fsync`, then after each change since:
    /// a crash leaves one of them.
    names: Vec<Names>,
    /// Storage operations seen so far.
    ops: u64,
    /// Crash just before this operation (1-based), writing the image here.
    crash_at: Option<(u64, PathBuf)>,
    crash: Option<Crash>,
    fault: Option<(u64, FaultKind)>,
    faults_injected: u64,
    /// The operations failed by injected faults, described.
    faulted: Vec<String>,
    rng: u64,
}

/// One simulated machine: a root directory and the ledger of what is durable under it.
pub(crate) struct Sim {
    root: PathBuf,
    state: Mutex<State>,
}

impl Sim {
    /// Registers a simulation of `root` (created if missing). Everything already under it
    /// counts as durable.
    pub(crate) fn register(root: &Path, seed: u64) -> io::Result<Arc<Sim>> {
        fs::create_dir_all(root)?;
        let mut state = State {
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            ..State::default()
        };
        let names = names_of(root, &mut state)?;
        for (rel, e) in &names {
            if let (false, Ok(bytes)) = (e.is_dir, fs::read(root.join(rel))) {
                state.files.insert(e.key, bytes);
            }
        }
        state.names = vec![names];
        let sim = Arc::new(Sim {
            root: root.to_path_buf(),
            state: Mutex::new(state),
        });
        let mut sims = registry();
        if sims
            .iter()
            .any(|s| s.root.starts_with(root) || root.starts_with(&s.root))
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is already simulated", root.display()),
            ));
        }
        sims.push(Arc::clone(&sim));
        ACTIVE.fetch_add(1, Ordering::SeqCst);
        Ok(sim)
    }

    /// Stops simulating: the hooks under this root become no-ops again.
    pub(crate) fn unregister(self: &Arc<Sim>) {
        let mut sims = registry();
        let before = sims.len();
        sims.retain(|s| !Arc::ptr_eq(s, self));
        if sims.len() < before {
            ACTIVE.fetch_sub(1, Ordering::SeqCst);
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Storage operations seen so far.
    pub(crate) fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Faults injected so far.
    pub(crate) fn faults_injected(&self) -> u64 {
        self.lock().faults_injected
    }

    /// The first 64 operations failed by injected faults: the operation and its path.
    pub(crate) fn faulted(&self) -> Vec<String> {
        self.lock().faulted.clone()
    }

    /// Arms a crash just before the `n`-th operation from now (`n >= 1`); the image is
    /// written to `image` (which must not exist).
    pub(crate) fn crash_before(&self, n: u64, image: &Path) {
        let mut st = self.lock();
        let at = st.ops.saturating_add(n.max(1));
        st.crash_at = Some((at, image.to_path_buf()));
    }

    /// Fails the `n`-th operation from now (`n >= 1`) with an I/O error, once or from then on.
    pub(crate) fn fail_op(&self, n: u64, kind: FaultKind) {
        let mut st = self.lock();
        let at = st.ops.saturating_add(n.max(1));
        st.fault = Some((at, kind));
    }

    /// The crash, once it happened.
    pub(crate) fn crashed(&self) -> Option<Crash> {
        self.lock().crash.clone()
    }

    /// Crashes now: writes the image to `image` and turns the machine off. If an armed crash
    /// already happened (a background thread can reach it at any moment), returns that one.
    pub(crate) fn crash_into(&self, image: &Path) -> Crash {
        let mut st = self.lock();
        match &st.crash {
            Some(done) => done.clone(),
            None => st.crash(&self.root, image.to_path_buf()),
        }
    }

    fn before(&self, op: &'static str, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if st.crash.is_some() {
            return Err(off(op, path));
        }
        st.ops += 1;
        let ops = st.ops;
        if let Some((at, image)) = st.crash_at.clone()
            && at == ops
        {
            st.crash(&self.root, image);
            return Err(off(op, path));
        }
        if let Some((at, kind)) = st.fault {
            let hit = match kind {
                FaultKind::Once => ops == at,
                FaultKind::Persistent => ops >= at,
            };
            if hit {
                st.faults_injected += 1;
                let what = format!("{op} {}", path.display());
                if st.faulted.len() < 64 {
                    st.faulted.push(what.clone());
                }
                return Err(io::Error::other(format!(
                    "injected I/O error at storage operation {ops} ({what})"
                )));
            }
        }
        Ok(())
    }

    fn synced(&self, path: &Path, what: Synced) -> io::Result<()> {
        let mut st = self.lock();
        if st.crash.is_some() {
            // The operation was still running when the machine went off: it never finished.
            return Err(off("finish", path));
        }
        match what {
            Synced::Dir => {
                // A journaling file system commits every name change so far, in any
                // directory, with the `fsync` of one.
                st.names = vec![names_of(&self.root, &mut st)?];
            }
            Synced::Created => {
                // A new file, whatever its inode number was used for before.
                let ino = fs::metadata(path)?.ino();
                st.keys.remove(&ino);
                st.note_names(&self.root)?;
            }
            Synced::Names => {
                st.note_names(&self.root)?;
            }
            Synced::File => {
                let file = File::open(path)?;
                let key = st.key(file.metadata()?.ino());
                let bytes = fs::read(path)?;
                st.files.insert(key, bytes);
            }
            Synced::Range { offset, len } => {
                let file = File::open(path)?;
                let md = file.metadata()?;
                let live_len = usize::try_from(md.len()).map_err(io::Error::other)?;
                let key = st.key(md.ino());
                let durable = st.files.entry(key).or_default();
                // A data sync also writes the metadata needed to read the data back: the
                // length and allocation. What it did not cover reads as zeros, or as
                // whatever writeback had put there (decided at the crash).
                durable.resize(live_len, 0);
                let start = usize::try_from(offset).map_err(io::Error::other)?;
                let end = start
                    .saturating_add(usize::try_from(len).map_err(io::Error::other)?)
                    .min(live_len);
                if start < end {
                    file.read_exact_at(&mut durable[start..end], offset)?;
                }
            }
        }
        Ok(())
    }
}

fn off(op: &str, path: &Path) -> io::Error {
    io::Error::other(format!(
        "simulated power loss: the machine is off ({op} {})",
        path.display()
    ))
}

enum Synced {
    Dir,
    /// Not a sync: a file was just created at `path` (a new file, even if its inode number
    /// was used before).
    Created,
    /// Not a sync: names changed (a create, rename or removal just happened).
    Names,
    File,
    Range {
        offset: u64,
        len: u64,
    },
}

fn sim_for(path: &Path) -> Option<Arc<Sim>> {
    registry()
        .iter()
        .find(|s| path.starts_with(&s.root))
        .map(Arc::clone)
}

/// A storage operation is about to run on `path`. Fails if a simulated crash or an injected
/// fault says so.
#[inline]
pub(crate) fn before(op: &'static str, path: &Path) -> io::Result<()> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    match sim_for(path) {
        Some(sim) => sim.before(op, path),
        None => Ok(()),
    }
}

/// Fails if the machine went off while the operation ran (it never finished), or if the
/// ledger cannot read what the operation changed.
fn report(path: &Path, what: Synced) -> io::Result<()> {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return Ok(());
    }
    match sim_for(path) {
        Some(sim) => sim.synced(path, what),
        None => Ok(()),
    }
}

/// `offset..offset + len` of the file at `path` was made durable (`msync`, `fdatasync`).
#[inline]
pub(crate) fn synced_data(path: &Path, offset: u64, len: u64) -> io::Result<()> {
    report(path, Synced::Range { offset, len })
}

/// The whole file at `path`, contents and length, was made durable (`fsync`).
#[inline]
pub(crate) fn synced_file(path: &Path) -> io::Result<()> {
    report(path, Synced::File)
}

/// The file at `path` was just created (or truncated to nothing and written anew).
#[inline]
pub(crate) fn created(path: &Path) -> io::Result<()> {
    report(path, Synced::Created)
}

/// A name under `path`'s directory was created, renamed or removed.
#[inline]
pub(crate) fn names_changed(path: &Path) -> io::Result<()> {
    report(path, Synced::Names)
}

/// The entries of directory `dir` were made durable (`fsync` of the directory).
#[inline]
pub(crate) fn synced_dir(dir: &Path) -> io::Result<()> {
    report(dir, Synced::Dir)
}

fn list(dir: &Path) -> io::Result<BTreeMap<OsString, Entry>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = e.metadata()?;
        out.insert(
            e.file_name(),
            Entry {
                key: md.ino(),
                is_dir: md.is_dir(),
            },
        );
    }
    Ok(out)
}

/// Every name under a root (relative paths; a directory before what it holds).
type Names = BTreeMap<PathBuf, Entry>;

impl State {
    /// The key of the file inode `ino` belongs to now.
    fn key(&mut self, ino: u64) -> u64 {
        if let Some(&k) = self.keys.get(&ino) {
            return k;
        }
        let k = self.next_key;
        self.next_key += 1;
        self.keys.insert(ino, k);
        k
    }

    /// The tree's names now, noted as the newest version if they changed.
    fn note_names(&mut self, root: &Path) -> io::Result<Names> {
        let now = names_of(root, self)?;
        if self.names.last() != Some(&now) {
            self.names.push(now.clone());
        }
        Ok(now)
    }

    /// Crashes: writes the image and turns the machine off.
    fn crash(&mut self, root: &Path, image: PathBuf) -> Crash {
        let outcome = write_image(root, &image, self).map_err(|e| e.to_string());
        let crash = Crash { image, outcome };
        self.crash = Some(crash.clone());
        crash
    }
}

fn names_of(root: &Path, st: &mut State) -> io::Result<Names> {
    fn walk(root: &Path, rel: &Path, out: &mut Names) -> io::Result<()> {
        let dir = root.join(rel);
        let entries = match list(&dir) {
            Ok(e) => e,
            // Removed while being listed: it has no names any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for (name, e) in entries {
            let rel = rel.join(name);
            if e.is_dir {
                walk(root, &rel, out)?;
            }
            out.insert(rel, e);
        }
        Ok(())
    }
    let mut out = Names::new();
    walk(root, Path::new(""), &mut out)?;
    for e in out.values_mut() {
        if !e.is_dir {
            e.key = st.key(e.key);
        }
    }
    Ok(out)
}

/// splitmix64: small, seedable, and the same on every platform.
fn next(rng: &mut u64) -> u64 {
    *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *rng;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn coin(rng: &mut u64) -> bool {
    next(rng) & 1 == 1
}

/// Writes what a power cut could leave of `root` into `image`.
fn write_image(root: &Path, image: &Path, st: &mut State) -> io::Result<ImageStats> {
    if image.starts_with(root) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the crash image {} must lie outside the simulated directory {}",
                image.display(),
                root.display()
            ),
        ));
    }
    let regime = match next(&mut st.rng) % 3 {
        0 => Regime::SyncedOnly,
        1 => Regime::Everything,
        _ => Regime::Mixed,
    };
    // Name changes that were never reported (files created in place) are in the live tree.
    let live = st.note_names(root)?;
    let version = match regime {
        Regime::SyncedOnly => 0,
        Regime::Everything => st.names.len() - 1,
        Regime::Mixed => (next(&mut st.rng) % st.names.len() as u64) as usize,
    };
    let mut stats = ImageStats {
        name_changes_lost: (st.names.len() - 1 - version) as u64,
        ..ImageStats::default()
    };
    let names = st.names[version].clone();
    let mut live_paths = HashMap::new();
    for (rel, e) in &live {
        if !e.is_dir {
            live_paths.insert(e.key, root.join(rel));
        }
    }
    fs::create_dir(image)?;
    // Parents sort before their children.
    for (rel, e) in &names {
        let to = image.join(rel);
        if e.is_dir {
            fs::create_dir(&to)?;
        } else {
            let bytes = image_file(e.key, regime, &live_paths, st, &mut stats)?;
            fs::write(&to, bytes)?;
            stats.files += 1;
        }
    }
    Ok(stats)
}

/// The bytes a crash leaves of the file with key `key`.
fn image_file(
    key: u64,
    regime: Regime,
    live_paths: &HashMap<u64, PathBuf>,
    st: &mut State,
    stats: &mut ImageStats,
) -> io::Result<Vec<u8>> {
    let mut durable = st.files.get(&key).cloned().unwrap_or_default();
    let mut live = match live_paths.get(&key).map(fs::read) {
        Some(Ok(bytes)) => bytes,
        _ => durable.clone(),
    };
    let len = if live.len() == durable.len() {
        live.len()
    } else {
        match regime {
            Regime::SyncedOnly => durable.len(),
            Regime::Everything => live.len(),
            Regime::Mixed if coin(&mut st.rng) => durable.len(),
            Regime::Mixed => live.len(),
        }
    };
    // Past its end, a file reads as zeros.
    durable.resize(len, 0);
    live.resize(len, 0);
    let mut out = durable.clone();
    for at in (0..len).step_by(PAGE) {
        let end = (at + PAGE).min(len);
        if durable[at..end] == live[at..end] {
            continue;
        }
        stats.pages_differing += 1;
        let pick = match regime {
            Regime::SyncedOnly => 0,
            Regime::Everything => 1,
            Regime::Mixed => next(&mut st.rng) % 3,
        };
        match pick {
            0 => {}
            1 => {
                stats.pages_live += 1;
                out[at..end].copy_from_slice(&live[at..end]);
            }
            _ => {
                stats.pages_torn += 1;
                for s in (at..end).step_by(SECTOR) {
                    let e = (s + SECTOR).min(end);
                    if coin(&mut st.rng) {
                        out[s..e].copy_from_slice(&live[s..e]);
                    }
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(dir: &Path, seed: u64) -> Arc<Sim> {
        Sim::register(dir, seed).unwrap()
    }

    #[test]
    fn an_unsynced_write_may_be_lost_and_a_synced_one_never_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let s = sim(&root, 1);
        let f = root.join("f");
        fs::write(&f, vec![1u8; 3 * PAGE]).unwrap();
        synced_file(&f).unwrap();
        synced_dir(&root).unwrap();
        // Page 1 changes after the sync: it may come back either way, or torn.
        let file = fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all_at(&[2u8; PAGE], PAGE as u64).unwrap();
        let mut seen_old = false;
        let mut seen_new = false;
        for i in 0..40 {
            let img = dir.path().join(format!("img{i}"));
            let mut st = s.lock();
            write_image(&root, &img, &mut st).unwrap();
            drop(st);
            let got = fs::read(img.join("f")).unwrap();
            assert_eq!(got.len(), 3 * PAGE);
            assert!(got[..PAGE].iter().all(|&b| b == 1), "synced page 0 changed");
            assert!(
                got[2 * PAGE..].iter().all(|&b| b == 1),
                "synced page 2 changed"
            );
            let mid = &got[PAGE..2 * PAGE];
            assert!(mid.iter().all(|&b| b == 1 || b == 2));
            seen_old |= mid.iter().all(|&b| b == 1);
            seen_new |= mid.iter().all(|&b| b == 2);
        }
        assert!(
            seen_old && seen_new,
            "40 crashes never varied the unsynced page"
        );
        s.unregister();
    }

    #[test]
    fn a_ranged_sync_covers_only_its_range() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let s = sim(&root, 2);
        let f = root.join("f");
        fs::write(&f, vec![0u8; 2 * PAGE]).unwrap();
        synced_file(&f).unwrap();
        synced_dir(&root).unwrap();
        let file = fs::OpenOptions::new().write(true).open(&f).unwrap();
        file.write_all_at(&[5u8; 2 * PAGE], 0).unwrap();
        synced_data(&f, 0, PAGE as u64).unwrap();
        s.crash_into(&dir.path().join("img")).outcome.unwrap();
        let got = fs::read(dir.path().join("img/f")).unwrap();
        assert!(
            got[..PAGE].iter().all(|&b| b == 5),
            "the synced range is lost"
        );
        s.unregister();
    }

    #[test]
    fn a_new_name_needs_its_directory_synced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let s = sim(&root, 3);
        fs::write(root.join("kept"), b"k").unwrap();
        synced_file(&root.join("kept")).unwrap();
        synced_dir(&root).unwrap();
        fs::write(root.join("new"), b"n").unwrap();
        synced_file(&root.join("new")).unwrap();
        let (mut with, mut without) = (false, false);
        for i in 0..40 {
            let img = dir.path().join(format!("img{i}"));
            let mut st = s.lock();
            write_image(&root, &img, &mut st).unwrap();
            drop(st);
            assert_eq!(fs::read(img.join("kept")).unwrap(), b"k");
            match fs::read(img.join("new")) {
                Ok(b) => {
                    assert_eq!(b, b"n");
                    with = true;
                }
                Err(_) => without = true,
            }
        }
        assert!(with && without);
        s.unregister();
    }

    #[test]
    fn after_the_crash_every_operation_fails_and_faults_hit_their_operation() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let s = sim(&root, 4);
        let p = root.join("x");
        s.fail_op(2, FaultKind::Once);
        assert!(before("write", &p).is_ok());
        assert!(before("write", &p).is_err());
        assert!(before("write", &p).is_ok());
        s.fail_op(1, FaultKind::Persistent);
        assert!(before("write", &p).is_err());
        assert!(before("write", &p).is_err());
        assert_eq!(s.faults_injected(), 3);
        s.crash_before(1, &dir.path().join("img"));
        assert!(before("write", &p).is_err());
        assert!(matches!(s.crashed(), Some(Crash { outcome: Ok(_), .. })));
        assert!(before("write", &p).is_err());
        // Outside the root nothing is simulated.
        assert!(before("write", dir.path()).is_ok());
        s.unregister();
        assert!(before("write", &p).is_ok());
    }
}
