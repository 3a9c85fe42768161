//! A session kept in a file: crash-safe, bounded, with a chosen fsync policy.
//!
//! # Format
//!
//! The file is a header and an append-only log of [`SessionChange`]s:
//!
//! ```text
//! header:  b"MQTTSESS"  u32 LE format version (1)
//! record:  u32 LE body length  u32 LE CRC-32C(body)  body = [u8 tag][data]
//! ```
//!
//! | tag | change               | data                                                   |
//! |-----|----------------------|--------------------------------------------------------|
//! | 1   | `ClientId`           | UTF-8 bytes                                            |
//! | 2   | `OutgoingAdded`      | the PUBLISH, encoded as an MQTT 5 packet               |
//! | 3–6 | `Outgoing{Released,Completed}`, `Incoming{Received,Released}` | u16 BE packet identifier (not 0) |
//! | 7   | `Subscribed`         | an MQTT 5 SUBSCRIBE (packet id 1, the subscription's properties, one filter) |
//! | 8   | `Unsubscribed`       | the UTF-8 filter                                       |
//! | 9   | `ServerSessionLost`  | nothing                                                |
//!
//! Each [`SessionStore::apply`] appends its records with one `write`. Opening the
//! file replays the records into a [`Session`] kept in memory, which
//! [`SessionStore::load`] returns. Records stand alone: a batch cut short by a
//! crash leaves its whole records, in order.
//!
//! # Recovery
//!
//! A crash can leave only an unfinished last write, and opening repairs it:
//!
//! - a file that ends inside a record (its header, or the body its length
//!   declares) has a torn tail: it is truncated to the end of the last whole
//!   record, and the store opens with the changes before it;
//! - so has a file whose bytes from some record onward are zero (the file was
//!   extended, but the data never reached the disk), or whose last record fails
//!   its checksum and is zero from a 512-byte boundary inside it to the end of the
//!   file (the same, when the blocks that did not reach the disk start in the
//!   middle of a record);
//! - a leftover `<path>.tmp` is a compaction that did not finish: it is deleted
//!   (the main file is only replaced by a complete, synced copy).
//!
//! Anything else that cannot be read (a wrong header, a whole record whose
//! checksum fails, a length of 0 or over 512 MiB, a length running past the end of
//! the file while whole records follow it, a record that does not decode) is
//! damage a crash does not cause: [`StoreError::Corrupt`] names the offset, and the
//! file is left as it is.
//!
//! # Bounds
//!
//! After an apply, once the log is over the compaction threshold (1 MiB by default,
//! see [`FileStore::with_compaction_threshold`]) and over four times the size of
//! the session written afresh, the store writes the session afresh to
//! `<path>.tmp` (the header, then the client identifier, the subscriptions, the
//! outgoing messages with their stage, and the incoming identifiers), syncs it,
//! renames it over the file, syncs the directory, and appends to the new file.
//!
//! One process at a time may use a file; the store does not lock it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use mqtt_codec::packet::{Packet, Subscribe};
use mqtt_codec::string::MqttString;
use mqtt_codec::{PacketId, ProtocolVersion, MAX_PACKET_SIZE};

use super::{Session, SessionChange, SessionStore, SessionSubscription, StoreError};

/// When the file store asks the operating system to put its writes on disk.
///
/// Every policy writes each batch of changes to the file (one `write` call)
/// before the driver sends the packets that depend on it, so a process that is
/// killed (SIGKILL, a panic, the OOM killer) loses nothing under any policy: the
/// kernel has the bytes. The policy decides what survives a power loss or a kernel
/// crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fsync` every batch before returning (the driver's step: the changes of one
    /// burst of input share one `fsync`). Nothing the server heard of is lost.
    Always,
    /// `fsync` once `changes` changes are unsynced, or `interval` after the first
    /// unsynced change, whichever comes first: at most that much is lost.
    Batch {
        /// Unsynced changes that trigger an `fsync`.
        changes: usize,
        /// Longest time a change stays unsynced.
        interval: Duration,
    },
    /// Never `fsync` (the kernel writes back when it chooses).
    Never,
}

/// The file's first bytes.
const MAGIC: &[u8; 8] = b"MQTTSESS";
/// The format version after the magic.
const FORMAT_VERSION: u32 = 1;
/// Magic and version.
const HEADER_LEN: usize = 12;
/// Body length and checksum.
const RECORD_HEADER_LEN: usize = 8;
/// No record is longer: a PUBLISH is at most 256 MiB, so a longer length is damage.
const MAX_BODY_LEN: u32 = 512 * 1024 * 1024;
/// The smallest unit a disk writes; zeros in whole blocks at the end of the file
/// are data that never reached it.
const BLOCK: usize = 512;
/// Default log size below which the store never compacts.
const DEFAULT_COMPACTION_THRESHOLD: u64 = 1024 * 1024;
/// The log is compacted when it is this many times the size of a fresh copy.
const COMPACTION_RATIO: u64 = 4;
/// The largest record buffer kept from one apply to the next.
const KEPT_BUFFER_CAPACITY: usize = 64 * 1024;

const TAG_CLIENT_ID: u8 = 1;
const TAG_OUTGOING_ADDED: u8 = 2;
const TAG_OUTGOING_RELEASED: u8 = 3;
const TAG_OUTGOING_COMPLETED: u8 = 4;
const TAG_INCOMING_RECEIVED: u8 = 5;
const TAG_INCOMING_RELEASED: u8 = 6;
const TAG_SUBSCRIBED: u8 = 7;
const TAG_UNSUBSCRIBED: u8 = 8;
const TAG_SERVER_SESSION_LOST: u8 = 9;

/// A [`SessionStore`] in one file (format and recovery: see the module
/// documentation).
///
/// The session is mirrored in memory, so [`SessionStore::load`] reads nothing and
/// [`SessionStore::apply`] only appends. [`SessionStore::flush`] syncs whatever is
/// unsynced under every policy, [`FsyncPolicy::Never`] included: it is called once,
/// when the client stops. Under [`FsyncPolicy::Batch`] a thread named
/// `mqtt-session-fsync` keeps the interval; dropping the store syncs what is
/// unsynced and stops it.
pub struct FileStore {
    path: PathBuf,
    policy: FsyncPolicy,
    /// The session as the file holds it.
    session: Session,
    /// The file and its sync state, shared with the fsync thread.
    shared: Arc<Shared>,
    /// Bytes in the file, header included: where the next record goes.
    log_len: u64,
    /// Log size below which the store never compacts.
    compaction_threshold: u64,
    /// Log size at which to measure the session again: measuring costs an encoding
    /// of the whole session, so it is done only when the log has grown enough
    /// since the last time.
    next_compaction_check: u64,
    /// The fsync thread, under [`FsyncPolicy::Batch`].
    syncer: Option<JoinHandle<()>>,
    /// The records of one apply, kept to reuse its allocation.
    buf: BytesMut,
}

/// What the store and its fsync thread share.
struct Shared {
    state: Mutex<SyncState>,
    /// Wakes the fsync thread: a first unsynced change, or the store dropped.
    wake: Condvar,
}

struct SyncState {
    /// The file, opened for appending (replaced by a compaction). In an `Arc`
    /// so that the fsync thread can sync it without holding the lock.
    file: Arc<File>,
    /// Changes written since the last sync.
    unsynced: usize,
    /// When the oldest unsynced change was written (the fsync thread's deadline).
    unsynced_since: Option<Instant>,
    /// A sync by the fsync thread failed: reported by the next apply or flush.
    sync_error: Option<io::Error>,
    /// A failed write could not be undone, so the file may end in a partial
    /// record: appending more would put whole records after it.
    broken: bool,
    /// The store was dropped: the fsync thread syncs and ends.
    stop: bool,
}

impl SyncState {
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()?;
        self.unsynced = 0;
        self.unsynced_since = None;
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        // Nothing panics while holding the lock; if something did, the state is
        // still a file and counters, usable as they are.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FileStore {
    /// Opens (or creates) the store at `path`.
    ///
    /// Reads the whole file and replays it; repairs a torn tail left by a crash
    /// (see the module documentation). Fails with [`StoreError::Corrupt`] when the
    /// file is not a session file or is damaged, and with [`StoreError::Io`] when
    /// it cannot be read or created (a missing directory, for one).
    pub fn open(path: impl AsRef<Path>, policy: FsyncPolicy) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let sync = policy != FsyncPolicy::Never;
        let io_error = |what: &str, source| StoreError::Io {
            context: format!("{what} {}", path.display()),
            source,
        };

        let tmp = tmp_path(&path);
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    context: format!("removing the unfinished compaction {}", tmp.display()),
                    source: e,
                });
            }
            _ => {}
        }

        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error("opening", e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| io_error("reading", e))?;

        let (session, log_len) = if data.iter().all(|&b| b == 0) {
            // New, or created and extended but never written (a power loss right
            // after creation): nothing to keep.
            file.set_len(0).map_err(|e| io_error("truncating", e))?;
            file.write_all(&header())
                .map_err(|e| io_error("writing the header of", e))?;
            if sync {
                file.sync_data().map_err(|e| io_error("syncing", e))?;
                sync_parent_dir(&path)?;
            }
            (Session::default(), HEADER_LEN)
        } else {
            let replay = replay(&data).map_err(|(offset, reason)| StoreError::Corrupt {
                path: path.clone(),
                offset: offset as u64,
                reason,
            })?;
            if replay.end < data.len() {
                file.set_len(replay.end as u64)
                    .map_err(|e| io_error("truncating the torn tail of", e))?;
                if sync {
                    file.sync_data().map_err(|e| io_error("syncing", e))?;
                }
            }
            (replay.session, replay.end)
        };

        let shared = Arc::new(Shared {
            state: Mutex::new(SyncState {
                file: Arc::new(file),
                unsynced: 0,
                unsynced_since: None,
                sync_error: None,
                broken: false,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let syncer = match policy {
            FsyncPolicy::Batch { interval, .. } => {
                let shared = Arc::clone(&shared);
                let thread = std::thread::Builder::new()
                    .name("mqtt-session-fsync".into())
                    .spawn(move || run_syncer(&shared, interval))
                    .map_err(|e| io_error("starting the fsync thread of", e))?;
                Some(thread)
            }
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        };
        Ok(Self {
            path,
            policy,
            session,
            shared,
            log_len: log_len as u64,
            compaction_threshold: DEFAULT_COMPACTION_THRESHOLD,
            next_compaction_check: DEFAULT_COMPACTION_THRESHOLD,
            syncer,
            buf: BytesMut::new(),
        })
    }

    /// Sets the log size (in bytes, header included) below which the store never
    /// compacts; 1 MiB by default. Above it, the log is compacted once it is over
    /// four times the size of a fresh copy of the session. A small threshold
    /// makes compaction happen in tests; a large one trades disk space for fewer
    /// rewrites.
    pub fn with_compaction_threshold(mut self, bytes: u64) -> Self {
        self.compaction_threshold = bytes;
        self.next_compaction_check = bytes;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    fn io_error(&self, what: &str, source: io::Error) -> StoreError {
        StoreError::Io {
            context: format!("{what} {}", self.path.display()),
            source,
        }
    }

    /// Errors left by earlier work that make writing unsafe or untrue.
    fn check_state(&self, state: &mut SyncState) -> Result<(), StoreError> {
        if let Some(e) = state.sync_error.take() {
            return Err(self.io_error("syncing", e));
        }
        if state.broken {
            return Err(self.io_error(
                "appending to",
                io::Error::other("an earlier write failed and could not be undone"),
            ));
        }
        Ok(())
    }

    /// Compacts when the log is over the threshold and four times a fresh copy.
    fn maybe_compact(&mut self) -> Result<(), StoreError> {
        if self.log_len <= self.compaction_threshold || self.log_len < self.next_compaction_check {
            return Ok(());
        }
        let mut snapshot = BytesMut::with_capacity(HEADER_LEN);
        snapshot.put_slice(&header());
        encode_session(&self.session, &mut snapshot).map_err(|e| self.io_error("encoding", e))?;
        let snapshot_len = snapshot.len() as u64;
        if self.log_len <= snapshot_len.saturating_mul(COMPACTION_RATIO) {
            // Mostly live data: look again once the log has grown by half, so
            // measuring costs a bounded share of what is appended.
            self.next_compaction_check = self.log_len.saturating_add(self.log_len / 2);
            return Ok(());
        }
        self.next_compaction_check = self
            .compaction_threshold
            .max(snapshot_len.saturating_mul(COMPACTION_RATIO));
        self.compact(&snapshot)
    }

    /// Replaces the file with `snapshot` (header and records).
    fn compact(&mut self, snapshot: &[u8]) -> Result<(), StoreError> {
        let sync = self.policy != FsyncPolicy::Never;
        let tmp = tmp_path(&self.path);
        let tmp_error = |what: &str, source| StoreError::Io {
            context: format!("{what} {}", tmp.display()),
            source,
        };
        let write_tmp = || -> Result<File, StoreError> {
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(&tmp)
                .map_err(|e| tmp_error("creating", e))?;
            file.set_len(0).map_err(|e| tmp_error("truncating", e))?;
            file.write_all(snapshot)
                .map_err(|e| tmp_error("writing", e))?;
            if sync {
                file.sync_data().map_err(|e| tmp_error("syncing", e))?;
            }
            std::fs::rename(&tmp, &self.path).map_err(|e| tmp_error("renaming", e))?;
            Ok(file)
        };

        // Held throughout, so that the fsync thread syncs the old file or the new
        // one, never a file in between.
        let shared = Arc::clone(&self.shared);
        let mut state = shared.lock();
        let file = match write_tmp() {
            Ok(file) => file,
            Err(e) => {
                // The old file is whole and still in place; the copy is worthless.
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        // The new file holds every change and (unless Never) is synced.
        state.file = Arc::new(file);
        state.unsynced = 0;
        state.unsynced_since = None;
        drop(state);
        self.log_len = snapshot.len() as u64;
        if sync {
            sync_parent_dir(&self.path)?;
        }
        Ok(())
    }
}

impl SessionStore for FileStore {
    fn load(&mut self) -> Result<Session, StoreError> {
        Ok(self.session.clone())
    }

    fn apply(&mut self, changes: &[SessionChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        // Encode everything first: a change that cannot be encoded refuses the
        // batch before any byte of it is written.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let encoded = changes
            .iter()
            .try_for_each(|change| encode_record(change, &mut buf));
        if let Err(e) = encoded {
            self.keep_buffer(buf);
            return Err(self.io_error("encoding a change for", e));
        }

        let written = self.write_and_sync(&buf, changes);
        self.keep_buffer(buf);
        written?;
        self.maybe_compact()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        self.check_state(&mut state)?;
        if state.unsynced > 0 {
            state.sync().map_err(|e| self.io_error("syncing", e))?;
        }
        Ok(())
    }
}

impl FileStore {
    /// Keeps `buf` for the next apply, unless a large payload made it large.
    fn keep_buffer(&mut self, buf: BytesMut) {
        if buf.capacity() <= KEPT_BUFFER_CAPACITY {
            self.buf = buf;
        }
    }

    /// Appends the `records` of `changes`, mirrors the changes, syncs per policy.
    fn write_and_sync(
        &mut self,
        records: &[u8],
        changes: &[SessionChange],
    ) -> Result<(), StoreError> {
        let mut state = self.shared.lock();
        self.check_state(&mut state)?;
        if let Err(e) = (&*state.file).write_all(records) {
            // Take back a partial write, so that the next records follow whole ones.
            if state.file.set_len(self.log_len).is_err() {
                state.broken = true;
            }
            return Err(self.io_error("appending to", e));
        }
        self.log_len = self.log_len.saturating_add(records.len() as u64);
        // The file holds the changes now; the mirror follows it.
        for change in changes {
            self.session.apply(change);
        }
        state.unsynced = state.unsynced.saturating_add(changes.len());
        match self.policy {
            FsyncPolicy::Always => state.sync().map_err(|e| self.io_error("syncing", e))?,
            FsyncPolicy::Batch { changes: limit, .. } if state.unsynced >= limit => {
                state.sync().map_err(|e| self.io_error("syncing", e))?;
            }
            FsyncPolicy::Batch { .. } => {
                if state.unsynced_since.is_none() {
                    state.unsynced_since = Some(Instant::now());
                    self.shared.wake.notify_one();
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(())
    }
}

impl Drop for FileStore {
    fn drop(&mut self) {
        if let Some(syncer) = self.syncer.take() {
            self.shared.lock().stop = true;
            self.shared.wake.notify_all();
            // The thread only syncs and returns; there is nothing to report.
            let _ = syncer.join();
        }
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Counts, not the messages: payloads are the application's data.
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("log_len", &self.log_len)
            .field("client_id", &self.session.client_id)
            .field("outgoing", &self.session.outgoing.len())
            .field("awaiting_release", &self.session.awaiting_release.len())
            .field("subscriptions", &self.session.subscriptions.len())
            .finish_non_exhaustive()
    }
}

/// The fsync thread of [`FsyncPolicy::Batch`]: syncs `interval` after the first
/// unsynced change, and a last time when the store is dropped.
fn run_syncer(shared: &Shared, interval: Duration) {
    let mut state = shared.lock();
    loop {
        if state.stop {
            if state.unsynced > 0 {
                // Nobody is left to hear of a failure.
                let _ = state.sync();
            }
            return;
        }
        let Some(since) = state.unsynced_since else {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let left = interval.saturating_sub(since.elapsed());
        if left.is_zero() {
            // Synced outside the lock, so that an apply is not held up by the
            // fsync. The changes counted so far were written before it starts,
            // so it covers them; later ones count as unsynced again.
            let file = Arc::clone(&state.file);
            state.unsynced = 0;
            state.unsynced_since = None;
            drop(state);
            let synced = file.sync_data();
            state = shared.lock();
            if let Err(e) = synced {
                // Reported by the next apply or flush.
                state.sync_error = Some(e);
            }
        } else {
            state = match shared.wake.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

fn header() -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    let bytes = MAGIC.iter().copied().chain(FORMAT_VERSION.to_le_bytes());
    for (slot, byte) in header.iter_mut().zip(bytes) {
        *slot = byte;
    }
    header
}

/// Where a compaction writes the new file before renaming it over `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Makes the creation or replacement of `path` durable: a directory entry is data
/// of the directory, which syncing the file does not write.
fn sync_parent_dir(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| StoreError::Io {
                context: format!("syncing the directory {}", dir.display()),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

// ---------------------------------------------------------------------------
// Writing records

/// Appends the record of `change`. On error nothing is appended.
fn encode_record(change: &SessionChange, buf: &mut BytesMut) -> io::Result<()> {
    let start = buf.len();
    // Length and checksum are known once the body is written.
    buf.put_bytes(0, RECORD_HEADER_LEN);
    let body_start = start + RECORD_HEADER_LEN;
    let encoded = encode_body(change, buf).and_then(|()| {
        u32::try_from(buf.len() - body_start)
            .ok()
            .filter(|&len| len <= MAX_BODY_LEN)
            .ok_or_else(|| invalid_input("a record over 512 MiB"))
    });
    let len = match encoded {
        Ok(len) => len,
        Err(e) => {
            buf.truncate(start);
            return Err(e);
        }
    };
    let crc = crc32c(buf.get(body_start..).unwrap_or_default());
    let fields = len.to_le_bytes().into_iter().chain(crc.to_le_bytes());
    if let Some(record_header) = buf.get_mut(start..body_start) {
        for (slot, byte) in record_header.iter_mut().zip(fields) {
            *slot = byte;
        }
    }
    Ok(())
}

fn encode_body(change: &SessionChange, buf: &mut BytesMut) -> io::Result<()> {
    match change {
        SessionChange::ClientId(id) => {
            buf.put_u8(TAG_CLIENT_ID);
            buf.put_slice(id.as_bytes());
        }
        SessionChange::OutgoingAdded(publish) => {
            buf.put_u8(TAG_OUTGOING_ADDED);
            encode_packet(&Packet::Publish(publish.clone()), buf)?;
        }
        SessionChange::OutgoingReleased(id) => put_packet_id(buf, TAG_OUTGOING_RELEASED, *id),
        SessionChange::OutgoingCompleted(id) => put_packet_id(buf, TAG_OUTGOING_COMPLETED, *id),
        SessionChange::IncomingReceived(id) => put_packet_id(buf, TAG_INCOMING_RECEIVED, *id),
        SessionChange::IncomingReleased(id) => put_packet_id(buf, TAG_INCOMING_RELEASED, *id),
        SessionChange::Subscribed(sub) => {
            buf.put_u8(TAG_SUBSCRIBED);
            let subscribe = Subscribe {
                packet_id: PacketId::MIN,
                properties: sub.properties.clone(),
                filters: vec![(sub.filter.clone(), sub.options)],
            };
            encode_packet(&Packet::Subscribe(subscribe), buf)?;
        }
        SessionChange::Unsubscribed(filter) => {
            buf.put_u8(TAG_UNSUBSCRIBED);
            buf.put_slice(filter.as_bytes());
        }
        SessionChange::ServerSessionLost => buf.put_u8(TAG_SERVER_SESSION_LOST),
    }
    Ok(())
}

fn put_packet_id(buf: &mut BytesMut, tag: u8, id: PacketId) {
    buf.put_u8(tag);
    buf.put_u16(id.get());
}

fn encode_packet(packet: &Packet, buf: &mut BytesMut) -> io::Result<()> {
    packet
        .encode(ProtocolVersion::V5, buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn invalid_input(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Appends the records that rebuild `session` from an empty one.
fn encode_session(session: &Session, buf: &mut BytesMut) -> io::Result<()> {
    let mut put = |change: SessionChange| encode_record(&change, buf);
    if let Some(id) = &session.client_id {
        put(SessionChange::ClientId(id.clone()))?;
    }
    for sub in &session.subscriptions {
        put(SessionChange::Subscribed(sub.clone()))?;
    }
    for message in &session.outgoing {
        put(SessionChange::OutgoingAdded(message.publish.clone()))?;
        if let (true, Some(id)) = (message.released, message.publish.packet_id) {
            put(SessionChange::OutgoingReleased(id))?;
        }
    }
    for &id in &session.awaiting_release {
        put(SessionChange::IncomingReceived(id))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading records

/// A file's records, read.
struct Replay {
    session: Session,
    /// The end of the last whole record: the file's length, or where its torn tail
    /// starts.
    end: usize,
}

/// Replays `data`, a whole file. `Err` holds the offset of the damage and what it
/// is.
fn replay(data: &[u8]) -> Result<Replay, (usize, String)> {
    check_header(data).map_err(|reason| (0, reason))?;
    let zeros_from = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let mut session = Session::default();
    let mut offset = HEADER_LEN;
    while offset < data.len() {
        match read_record(data, offset, zeros_from) {
            Frame::Whole { body, end } => {
                let change = decode_body(body).map_err(|reason| (offset, reason))?;
                session.apply(&change);
                offset = end;
            }
            Frame::Torn => break,
            Frame::Damaged(reason) => return Err((offset, reason)),
        }
    }
    Ok(Replay {
        session,
        end: offset,
    })
}

fn check_header(data: &[u8]) -> Result<(), String> {
    let (Some(magic), Some(version)) = (data.get(..MAGIC.len()), read_u32(data, MAGIC.len()))
    else {
        return Err("not a session file (shorter than the header)".into());
    };
    if magic != MAGIC {
        return Err("not a session file (no MQTTSESS header)".into());
    }
    if version != FORMAT_VERSION {
        return Err(format!(
            "not a session file of a known version (format {version}, expected {FORMAT_VERSION})"
        ));
    }
    Ok(())
}

/// What is at a record's offset.
enum Frame<'a> {
    /// A record with a valid checksum, ending at `end`.
    Whole { body: &'a [u8], end: usize },
    /// The unfinished last write: the file is cut here.
    Torn,
    /// Damage a crash does not cause.
    Damaged(String),
}

/// Reads the record at `offset` of `data`, whose bytes from `zeros_from` on are
/// all zero.
fn read_record(data: &[u8], offset: usize, zeros_from: usize) -> Frame<'_> {
    if offset >= zeros_from {
        // Space the file was extended by but whose data never reached the disk.
        return Frame::Torn;
    }
    let (Some(len), Some(crc)) = (read_u32(data, offset), read_u32(data, offset + 4)) else {
        // The file ends inside the record header.
        return Frame::Torn;
    };
    if len == 0 || len > MAX_BODY_LEN {
        return Frame::Damaged(format!("impossible record length {len}"));
    }
    let body_start = offset + RECORD_HEADER_LEN;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| body_start.checked_add(len));
    let Some((body, end)) = end.and_then(|end| Some((data.get(body_start..end)?, end))) else {
        // The file ends inside the body: the last write did not finish. Unless
        // whole records follow: then it is the length field that is damaged.
        return if record_follows(data, body_start) {
            Frame::Damaged(format!(
                "record length {len} runs past the end of the file, but records follow"
            ))
        } else {
            Frame::Torn
        };
    };
    if crc32c(body) != crc {
        // Zeros from a block boundary inside the record to the end of the file:
        // the blocks of the last write that never reached the disk.
        return if zeros_from.next_multiple_of(BLOCK) < end {
            Frame::Torn
        } else {
            Frame::Damaged("checksum mismatch".into())
        };
    }
    Frame::Whole { body, end }
}

/// True when a whole record with a valid checksum starts somewhere from `from` on.
///
/// Only called for a record running past the end of the file. The search gives up
/// (and answers no, as for a torn tail) after checksumming a few times the bytes
/// searched: payloads of small binary numbers can look like lengths everywhere.
fn record_follows(data: &[u8], from: usize) -> bool {
    let searched = data.len().saturating_sub(from);
    let mut budget = searched.saturating_mul(4).max(1024 * 1024);
    for at in from..data.len() {
        let Some(len) = read_u32(data, at).and_then(|len| usize::try_from(len).ok()) else {
            return false;
        };
        let body_start = at + RECORD_HEADER_LEN;
        let fits = len > 0 && len <= data.len().saturating_sub(body_start);
        let tag = data.get(body_start).copied().unwrap_or(0);
        if !fits || !(TAG_CLIENT_ID..=TAG_SERVER_SESSION_LOST).contains(&tag) {
            continue;
        }
        let Some(budget_left) = budget.checked_sub(len) else {
            return false;
        };
        budget = budget_left;
        let body = data.get(body_start..body_start + len).unwrap_or_default();
        if read_u32(data, at + 4) == Some(crc32c(body)) {
            return true;
        }
    }
    false
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The change a record body holds.
fn decode_body(body: &[u8]) -> Result<SessionChange, String> {
    let Some((&tag, data)) = body.split_first() else {
        return Err("empty record".into());
    };
    Ok(match tag {
        TAG_CLIENT_ID => SessionChange::ClientId(
            String::from_utf8(data.to_vec())
                .map_err(|_| "client identifier is not UTF-8".to_owned())?,
        ),
        TAG_OUTGOING_ADDED => match decode_packet(data)? {
            Packet::Publish(publish) => SessionChange::OutgoingAdded(publish),
            other => return Err(unexpected_packet(&other, "PUBLISH")),
        },
        TAG_OUTGOING_RELEASED => SessionChange::OutgoingReleased(decode_packet_id(data)?),
        TAG_OUTGOING_COMPLETED => SessionChange::OutgoingCompleted(decode_packet_id(data)?),
        TAG_INCOMING_RECEIVED => SessionChange::IncomingReceived(decode_packet_id(data)?),
        TAG_INCOMING_RELEASED => SessionChange::IncomingReleased(decode_packet_id(data)?),
        TAG_SUBSCRIBED => match decode_packet(data)? {
            Packet::Subscribe(subscribe) => {
                let [(filter, options)] = <[_; 1]>::try_from(subscribe.filters)
                    .map_err(|_| "SUBSCRIBE record with more than one filter".to_owned())?;
                SessionChange::Subscribed(SessionSubscription {
                    filter,
                    options,
                    properties: subscribe.properties,
                })
            }
            other => return Err(unexpected_packet(&other, "SUBSCRIBE")),
        },
        TAG_UNSUBSCRIBED => SessionChange::Unsubscribed(
            MqttString::from_bytes(Bytes::copy_from_slice(data))
                .map_err(|e| format!("topic filter: {e}"))?,
        ),
        TAG_SERVER_SESSION_LOST if data.is_empty() => SessionChange::ServerSessionLost,
        TAG_SERVER_SESSION_LOST => return Err("server-session-lost record with data".into()),
        tag => return Err(format!("unknown record tag {tag}")),
    })
}

/// Decodes a packet that must use all of `data`. The copy makes the payload
/// and strings of the packet share this record's memory, not the whole file's.
fn decode_packet(data: &[u8]) -> Result<Packet, String> {
    let mut bytes = Bytes::copy_from_slice(data);
    match Packet::decode_bytes(&mut bytes, ProtocolVersion::V5, MAX_PACKET_SIZE) {
        Ok(Some(packet)) if bytes.is_empty() => Ok(packet),
        Ok(Some(_)) => Err("bytes after the packet".into()),
        Ok(None) => Err("truncated packet".into()),
        Err(e) => Err(format!("packet does not decode: {e}")),
    }
}

fn unexpected_packet(packet: &Packet, expected: &str) -> String {
    format!("{:?} where a {expected} belongs", packet.packet_type())
}

fn decode_packet_id(data: &[u8]) -> Result<PacketId, String> {
    let bytes = <[u8; 2]>::try_from(data)
        .map_err(|_| format!("packet identifier of {} bytes", data.len()))?;
    PacketId::new(u16::from_be_bytes(bytes)).ok_or_else(|| "packet identifier 0".to_owned())
}

// ---------------------------------------------------------------------------
// CRC-32C (Castagnoli), reflected, as in iSCSI and ext4.

const CRC32C_TABLE: [u32; 256] = crc32c_table();

#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of bounds fails the build"
)]
const fn crc32c_table() -> [u32; 256] {
    let mut table = [0; 256];
    let mut i: u32 = 0;
    while i < 256 {
        let mut crc = i;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i as usize] = crc;
        i += 1;
    }
    table
}

fn crc32c(data: &[u8]) -> u32 {
    let crc = data.iter().fold(!0u32, |crc, &byte| {
        let [low, ..] = crc.to_le_bytes();
        let entry = CRC32C_TABLE
            .get(usize::from(low ^ byte))
            .copied()
            .unwrap_or(0);
        entry ^ (crc >> 8)
    });
    !crc
}

#[cfg(test)]
#[allow(
    clippy::cast_possible_truncation,
    reason = "tests: small fixture sizes"
)]
mod tests {
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use mqtt_codec::packet::{Publish, RetainHandling, SubscriptionOptions};
    use mqtt_codec::property::{PublishProperties, SubscribeProperties, UserProperty};
    use mqtt_codec::string::MqttString;
    use mqtt_codec::{PacketId, QoS};

    use super::*;
    use crate::session::SessionSubscription;

    const POLICIES: [FsyncPolicy; 3] = [
        FsyncPolicy::Always,
        FsyncPolicy::Batch {
            changes: 3,
            interval: Duration::from_millis(20),
        },
        FsyncPolicy::Never,
    ];

    /// A directory of its own for one test, removed when the test ends.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("mqtt-file-store-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn id(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    fn string(s: &str) -> MqttString {
        MqttString::try_from(s).unwrap()
    }

    fn publish(n: u16, qos: QoS, payload: impl Into<Bytes>) -> Publish {
        Publish {
            qos,
            topic: string("sensors/k1/temp"),
            packet_id: Some(id(n)),
            payload: payload.into(),
            ..Publish::default()
        }
    }

    fn subscription(filter: &str, qos: QoS, identifier: Option<u32>) -> SessionSubscription {
        SessionSubscription {
            filter: string(filter),
            options: SubscriptionOptions {
                qos,
                no_local: !filter.starts_with("$share/"),
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
            properties: SubscribeProperties {
                subscription_identifier: identifier,
                user_properties: vec![UserProperty {
                    name: string("origin"),
                    value: string("restore"),
                }],
            },
        }
    }

    /// Something of every change, the way a session meets them.
    fn realistic_changes() -> Vec<SessionChange> {
        let with_properties = Publish {
            retain: true,
            properties: Some(Box::new(PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: Some(3600),
                response_topic: Some(string("replies/k1")),
                correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
                content_type: Some(string("text/plain")),
                user_properties: vec![UserProperty {
                    name: string("unit"),
                    value: string("celsius"),
                }],
                ..PublishProperties::default()
            })),
            ..publish(1, QoS::AtLeastOnce, &b"21.5"[..])
        };
        let big: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        vec![
            SessionChange::ClientId("sensor-k1".into()),
            SessionChange::Subscribed(subscription("sensors/+/cmd", QoS::ExactlyOnce, Some(42))),
            SessionChange::Subscribed(subscription("$share/g/jobs/#", QoS::AtLeastOnce, None)),
            SessionChange::OutgoingAdded(with_properties),
            SessionChange::OutgoingAdded(publish(2, QoS::ExactlyOnce, big)),
            SessionChange::OutgoingAdded(publish(3, QoS::ExactlyOnce, Bytes::new())),
            SessionChange::OutgoingReleased(id(2)),
            SessionChange::IncomingReceived(id(10)),
            SessionChange::IncomingReceived(id(5)),
            SessionChange::IncomingReceived(id(65535)),
            SessionChange::OutgoingCompleted(id(1)),
            SessionChange::IncomingReleased(id(10)),
            SessionChange::Subscribed(subscription("sensors/+/cmd", QoS::AtMostOnce, Some(43))),
            SessionChange::Unsubscribed(string("$share/g/jobs/#")),
            SessionChange::ServerSessionLost,
            SessionChange::OutgoingReleased(id(3)),
            SessionChange::OutgoingAdded(publish(4, QoS::AtLeastOnce, &b"22.0"[..])),
            // Last byte 0x05: neither zero nor 0xFF (see the corruption test).
            SessionChange::IncomingReceived(id(0x0105)),
        ]
    }

    fn session_of(changes: &[SessionChange]) -> Session {
        let mut session = Session::default();
        for change in changes {
            session.apply(change);
        }
        session
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    /// A file of `changes`, one apply each; returns each boundary after the
    /// header (file length and the session up to there), the empty file first.
    fn build_log(path: &Path, changes: &[SessionChange]) -> Vec<(u64, Session)> {
        let mut store = FileStore::open(path, FsyncPolicy::Never).unwrap();
        let mut boundaries = vec![(file_len(path), Session::default())];
        for (i, change) in changes.iter().enumerate() {
            store.apply(std::slice::from_ref(change)).unwrap();
            let session = session_of(changes.get(..=i).unwrap());
            boundaries.push((file_len(path), session));
        }
        boundaries
    }

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn round_trip_under_every_policy() {
        let dir = TestDir::new("round-trip");
        let changes = realistic_changes();
        let expected = session_of(&changes);
        for (n, policy) in POLICIES.into_iter().enumerate() {
            let path = dir.file(&format!("session-{n}"));
            let mut store = FileStore::open(&path, policy).unwrap();
            assert_eq!(store.load().unwrap(), Session::default());
            // In batches of varying size, as the driver's steps come.
            for batch in changes.chunks(n + 2) {
                store.apply(batch).unwrap();
            }
            assert_eq!(store.load().unwrap(), expected);
            store.flush().unwrap();
            drop(store);

            let mut reopened = FileStore::open(&path, policy).unwrap();
            assert_eq!(reopened.load().unwrap(), expected, "{policy:?}");
            assert_eq!(reopened.policy(), policy);
            assert_eq!(reopened.path(), path);
        }
    }

    #[test]
    fn an_empty_apply_writes_nothing() {
        let dir = TestDir::new("empty-apply");
        let path = dir.file("session");
        let mut store = FileStore::open(&path, FsyncPolicy::Always).unwrap();
        let len = file_len(&path);
        assert_eq!(len, HEADER_LEN as u64);
        store.apply(&[]).unwrap();
        assert_eq!(file_len(&path), len);
        assert_eq!(store.shared.lock().unsynced, 0);
    }

    #[test]
    fn a_change_that_cannot_be_encoded_writes_nothing() {
        let dir = TestDir::new("unencodable");
        let path = dir.file("session");
        let mut store = FileStore::open(&path, FsyncPolicy::Always).unwrap();
        let good = SessionChange::OutgoingAdded(publish(1, QoS::AtLeastOnce, &b"x"[..]));
        let wildcard = SessionChange::OutgoingAdded(Publish {
            topic: string("sensors/#"),
            ..publish(2, QoS::AtLeastOnce, &b"y"[..])
        });
        let len = file_len(&path);
        let err = store.apply(&[good, wildcard]).unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err}");
        assert_eq!(file_len(&path), len);
        assert_eq!(store.load().unwrap(), Session::default());
    }

    #[test]
    fn a_torn_tail_at_every_offset_opens_at_the_last_whole_record() {
        let dir = TestDir::new("torn-tail");
        let path = dir.file("session");
        let boundaries = build_log(&path, &realistic_changes());
        let full = fs::read(&path).unwrap();
        let copy = dir.file("copy");
        for cut in HEADER_LEN..=full.len() {
            fs::write(&copy, full.get(..cut).unwrap()).unwrap();
            let mut store = FileStore::open(&copy, FsyncPolicy::Never)
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let (boundary, expected) = boundaries
                .iter()
                .rev()
                .find(|(end, _)| *end <= cut as u64)
                .unwrap();
            assert_eq!(&store.load().unwrap(), expected, "cut at {cut}");
            assert_eq!(file_len(&copy), *boundary, "cut at {cut}");
        }
    }

    #[test]
    fn a_zero_filled_tail_is_cut_off() {
        let dir = TestDir::new("zero-tail");
        let path = dir.file("session");
        let changes = realistic_changes();
        let boundaries = build_log(&path, &changes);
        let (good_len, expected) = boundaries.last().unwrap();
        let good = fs::read(&path).unwrap();
        let copy = dir.file("copy");
        for zeros in [1, 3, 8, 9, 100, 4096] {
            let mut data = good.clone();
            data.resize(good.len() + zeros, 0);
            fs::write(&copy, &data).unwrap();
            let mut store = FileStore::open(&copy, FsyncPolicy::Always).unwrap();
            assert_eq!(&store.load().unwrap(), expected, "{zeros} zeros");
            assert_eq!(file_len(&copy), *good_len);
            // Appending goes on after the good records.
            store.apply(&[SessionChange::ServerSessionLost]).unwrap();
            drop(store);
            let mut reopened = FileStore::open(&copy, FsyncPolicy::Always).unwrap();
            let mut after = expected.clone();
            after.apply(&SessionChange::ServerSessionLost);
            assert_eq!(reopened.load().unwrap(), after);
        }
    }

    #[test]
    fn zero_blocks_inside_the_last_record_are_a_torn_tail() {
        let dir = TestDir::new("zero-blocks");
        let path = dir.file("session");
        let mut changes = realistic_changes();
        let payload: Vec<u8> = (0..3000u32).map(|i| (i % 200 + 1) as u8).collect();
        changes.push(SessionChange::OutgoingAdded(publish(
            9,
            QoS::AtLeastOnce,
            payload,
        )));
        let boundaries = build_log(&path, &changes);
        let (before_last, expected) = boundaries.get(boundaries.len() - 2).unwrap();
        let mut data = fs::read(&path).unwrap();
        // The file grew by the whole record, but its blocks from the second one
        // inside the record on never reached the disk.
        let unwritten = (*before_last as usize).next_multiple_of(BLOCK) + BLOCK;
        data.get_mut(unwritten..).unwrap().fill(0);
        fs::write(&path, &data).unwrap();
        let mut store = FileStore::open(&path, FsyncPolicy::Always).unwrap();
        assert_eq!(&store.load().unwrap(), expected);
        assert_eq!(file_len(&path), *before_last);
    }

    #[test]
    fn a_flipped_byte_is_damage_or_a_torn_last_length_never_a_wrong_session() {
        let dir = TestDir::new("flip");
        let path = dir.file("session");
        let boundaries = build_log(&path, &realistic_changes());
        let good = fs::read(&path).unwrap();
        let (last_start, before_last) = boundaries.get(boundaries.len() - 2).unwrap();
        let last_start = *last_start as usize;
        let copy = dir.file("copy");
        for at in HEADER_LEN..good.len() {
            let mut data = good.clone();
            *data.get_mut(at).unwrap() ^= 0xFF;
            fs::write(&copy, &data).unwrap();
            match FileStore::open(&copy, FsyncPolicy::Never) {
                Err(StoreError::Corrupt { offset, path, .. }) => {
                    assert!(
                        offset as usize <= at,
                        "byte {at}: damage reported at {offset}"
                    );
                    assert_eq!(path, copy);
                    assert_eq!(fs::read(&copy).unwrap(), data, "byte {at}: file modified");
                }
                Ok(mut store) => {
                    // Only a longer length of the last record reads as its
                    // unfinished write.
                    assert!(
                        (last_start..last_start + 4).contains(&at),
                        "byte {at} opened"
                    );
                    assert_eq!(&store.load().unwrap(), before_last, "byte {at}");
                    assert_eq!(file_len(&copy), last_start as u64);
                }
                Err(e) => panic!("byte {at}: {e}"),
            }
        }
    }

    #[test]
    fn a_middle_length_running_past_the_end_is_damage() {
        let dir = TestDir::new("middle-length");
        let path = dir.file("session");
        let boundaries = build_log(&path, &realistic_changes());
        let (third, _) = boundaries.get(3).unwrap();
        let mut data = fs::read(&path).unwrap();
        let at = *third as usize;
        data.get_mut(at..at + 4)
            .unwrap()
            .copy_from_slice(&1_000_000u32.to_le_bytes());
        fs::write(&path, &data).unwrap();
        let err = FileStore::open(&path, FsyncPolicy::Always).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { offset, .. } if offset == *third),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_bad_header_is_not_a_session_file() {
        let dir = TestDir::new("header");
        let path = dir.file("session");
        build_log(&path, &realistic_changes());
        let good = fs::read(&path).unwrap();
        let copy = dir.file("copy");
        for at in 0..HEADER_LEN {
            let mut data = good.clone();
            *data.get_mut(at).unwrap() ^= 0xFF;
            fs::write(&copy, &data).unwrap();
            let err = FileStore::open(&copy, FsyncPolicy::Never).unwrap_err();
            assert!(
                matches!(&err, StoreError::Corrupt { offset: 0, reason, .. }
                    if reason.contains("not a session file")),
                "byte {at}: {err}"
            );
            assert_eq!(fs::read(&copy).unwrap(), data);
        }
        for short in [&b"MQTT"[..], b"\0\0\0x", b"{\"json\": true}\n"] {
            fs::write(&copy, short).unwrap();
            let err = FileStore::open(&copy, FsyncPolicy::Never).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
            assert_eq!(fs::read(&copy).unwrap(), short);
        }
    }

    #[test]
    fn an_empty_or_all_zero_file_is_a_new_session() {
        let dir = TestDir::new("new-file");
        let path = dir.file("session");
        for data in [&[][..], &[0; 5], &[0; 4096]] {
            fs::write(&path, data).unwrap();
            let mut store = FileStore::open(&path, FsyncPolicy::Always).unwrap();
            assert_eq!(store.load().unwrap(), Session::default());
            assert_eq!(fs::read(&path).unwrap(), header());
        }
    }

    #[test]
    fn compaction_keeps_the_file_small_and_the_session_whole() {
        let dir = TestDir::new("compaction");
        for (policy, rounds) in [
            (FsyncPolicy::Never, 5000u32),
            (FsyncPolicy::Always, 300),
            (POLICIES[1], 300),
        ] {
            let path = dir.file(&format!("session-{rounds}"));
            let mut store = FileStore::open(&path, policy)
                .unwrap()
                .with_compaction_threshold(4096);
            // What must survive every compaction.
            let lasting = realistic_changes();
            store.apply(&lasting).unwrap();
            let mut expected = session_of(&lasting);
            let mut largest = 0;
            for round in 0..rounds {
                let n = u16::try_from(round % 60_000).unwrap() + 1000;
                let payload = Bytes::from(vec![u8::try_from(round % 256).unwrap(); 100]);
                let added = SessionChange::OutgoingAdded(publish(n, QoS::AtLeastOnce, payload));
                for change in [added, SessionChange::OutgoingCompleted(id(n))] {
                    store.apply(std::slice::from_ref(&change)).unwrap();
                    expected.apply(&change);
                    largest = largest.max(file_len(&path));
                }
            }
            assert!(
                largest < 64 * 1024,
                "{policy:?}: the file reached {largest} bytes"
            );
            let tail = SessionChange::IncomingReceived(id(4242));
            store.apply(std::slice::from_ref(&tail)).unwrap();
            expected.apply(&tail);
            assert_eq!(store.load().unwrap(), expected);
            drop(store);
            assert!(!tmp_path(&path).exists());
            let mut reopened = FileStore::open(&path, policy).unwrap();
            assert_eq!(reopened.load().unwrap(), expected, "{policy:?}");
        }
    }

    #[test]
    fn a_leftover_tmp_file_is_removed_at_open() {
        let dir = TestDir::new("leftover-tmp");
        let path = dir.file("session");
        let changes = realistic_changes();
        build_log(&path, &changes);
        let tmp = tmp_path(&path);
        fs::write(&tmp, b"MQTTSESS\x01\0\0\0half a compaction").unwrap();
        let mut store = FileStore::open(&path, FsyncPolicy::Always).unwrap();
        assert!(!tmp.exists());
        assert_eq!(store.load().unwrap(), session_of(&changes));
    }

    #[test]
    fn batch_policy_syncs_by_count_and_by_time() {
        let dir = TestDir::new("batch");
        let change = SessionChange::IncomingReceived(id(1));

        let by_count = FsyncPolicy::Batch {
            changes: 2,
            interval: Duration::from_secs(3600),
        };
        let mut store = FileStore::open(dir.file("count"), by_count).unwrap();
        store.apply(std::slice::from_ref(&change)).unwrap();
        assert_eq!(store.shared.lock().unsynced, 1);
        store.apply(std::slice::from_ref(&change)).unwrap();
        assert_eq!(store.shared.lock().unsynced, 0);

        let by_time = FsyncPolicy::Batch {
            changes: 1000,
            interval: Duration::from_millis(20),
        };
        let mut store = FileStore::open(dir.file("time"), by_time).unwrap();
        store.apply(std::slice::from_ref(&change)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.shared.lock().unsynced > 0 {
            assert!(Instant::now() < deadline, "the fsync thread did not sync");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_fsync_thread_stops_when_the_store_is_dropped() {
        let dir = TestDir::new("batch-drop");
        let policy = FsyncPolicy::Batch {
            changes: 1000,
            interval: Duration::from_secs(3600),
        };
        for changes in [&[][..], &[SessionChange::ServerSessionLost]] {
            let mut store = FileStore::open(dir.file("session"), policy).unwrap();
            store.apply(changes).unwrap();
            let shared = Arc::downgrade(&store.shared);
            let started = Instant::now();
            drop(store);
            // A liveness check, not a timing one: the thread is joined, not left
            // waiting for its hour.
            assert!(started.elapsed() < Duration::from_secs(2));
            assert!(
                shared.upgrade().is_none(),
                "the thread still holds the state"
            );
        }
    }

    #[test]
    fn flush_syncs_under_every_policy() {
        let dir = TestDir::new("flush");
        for (n, policy) in POLICIES.into_iter().enumerate() {
            let mut store = FileStore::open(dir.file(&format!("session-{n}")), policy).unwrap();
            store.apply(&[SessionChange::ServerSessionLost]).unwrap();
            store.flush().unwrap();
            assert_eq!(store.shared.lock().unsynced, 0, "{policy:?}");
        }
    }

    #[test]
    fn a_missing_directory_is_an_io_error() {
        let dir = TestDir::new("missing-dir");
        let path = dir.file("no/such/dir/session");
        let err = FileStore::open(&path, FsyncPolicy::Always).unwrap_err();
        assert!(
            matches!(&err, StoreError::Io { context, .. } if context.contains("no/such/dir")),
            "{err}"
        );
    }

    #[test]
    fn debug_shows_counts_not_payloads() {
        let dir = TestDir::new("debug");
        let mut store = FileStore::open(dir.file("session"), FsyncPolicy::Never).unwrap();
        let secret = publish(1, QoS::AtLeastOnce, &b"do-not-print"[..]);
        store
            .apply(&[SessionChange::OutgoingAdded(secret)])
            .unwrap();
        let debug = format!("{store:?}");
        assert!(debug.contains("outgoing: 1"), "{debug}");
        assert!(!debug.contains("do-not-print"), "{debug}");
    }
}
