//! One interface over where an array's objects live: a local folder
//! ([`FsStore`]) or a remote store ([`RemoteStore`]). The read engine and the
//! batch executor open objects through [`Store`] and read them through
//! [`Object`]; shard indexes go through the cache of [`crate::index_cache`].

use crate::error::{Error, Result};
use crate::index_cache::{self, CachedIndex};
use crate::remote::{Fetch, ObjectInfo, RemoteStore};
use crate::shard;
use crate::spec::ShardingSpec;
use crate::store::{FsStore, StoredObject};
use bytes::Bytes;
use std::sync::Arc;

/// Where an array's chunk objects live.
#[derive(Debug)]
pub enum Store {
    /// A local folder.
    Fs(FsStore),
    /// A folder (key prefix) of a remote store.
    Remote(RemoteArray),
}

/// An array's folder inside a remote store.
#[derive(Debug, Clone)]
pub struct RemoteArray {
    /// The store.
    pub remote: Arc<RemoteStore>,
    /// The array's path under the store's root (`""`: the root itself).
    pub prefix: String,
}

impl RemoteArray {
    /// The key of `key` relative to the store's root.
    pub fn full_key(&self, key: &str) -> String {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{key}", self.prefix),
        }
    }
}

impl From<FsStore> for Store {
    fn from(store: FsStore) -> Self {
        Store::Fs(store)
    }
}

impl Store {
    /// The path or URL of `key`, for messages.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Store::Fs(fs) => fs.path(key).display().to_string(),
            Store::Remote(r) => r.remote.key_url(&r.full_key(key)),
        }
    }

    /// Opens the object under `key`; `None` when it does not exist. A
    /// remote shard whose index is cached opens without a request; other
    /// remote objects cost one HEAD request.
    pub fn open(&self, key: &str) -> Result<Option<Object>> {
        match self {
            Store::Fs(fs) => Ok(fs.open(key)?.map(Object::File)),
            Store::Remote(r) => {
                let full = r.full_key(key);
                let url = r.remote.key_url(&full);
                let info = match index_cache::get(&url, None) {
                    Some(cached) => Some(ObjectInfo {
                        len: cached.len,
                        stamp: cached.stamp,
                    }),
                    None => r.remote.head(&full)?,
                };
                Ok(info.map(|info| {
                    Object::Remote(RemoteObject::new(r.remote.clone(), full, info, Vec::new()))
                }))
            }
        }
    }

    /// Writes `bytes` under `key` (local stores only).
    pub fn write(&self, key: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Store::Fs(fs) => fs.write(key, bytes),
            Store::Remote(r) => Err(r.remote.read_only(&r.full_key(key))),
        }
    }

    /// Removes the object under `key` if it exists (local stores only).
    pub fn remove(&self, key: &str) -> Result<()> {
        match self {
            Store::Fs(fs) => fs.remove(key),
            Store::Remote(r) => Err(r.remote.read_only(&r.full_key(key))),
        }
    }
}

/// An open object: a local file, or a remote object with the byte ranges
/// already fetched for it.
#[derive(Debug)]
pub enum Object {
    /// A local file.
    File(StoredObject),
    /// A remote object.
    Remote(RemoteObject),
}

/// A remote object: its length and version, and prefetched byte ranges.
/// Reads of ranges not prefetched are fetched when asked for.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    remote: Arc<RemoteStore>,
    key: String,
    info: ObjectInfo,
    /// Fetched `(offset, bytes)` pieces.
    pieces: Vec<(u64, Bytes)>,
}

impl RemoteObject {
    /// An object under `key` (relative to the store's root) with `pieces` fetched.
    pub fn new(
        remote: Arc<RemoteStore>,
        key: String,
        info: ObjectInfo,
        pieces: Vec<(u64, Bytes)>,
    ) -> Self {
        Self {
            remote,
            key,
            info,
            pieces,
        }
    }

    /// The piece holding `[offset, offset + len)`, when one was fetched.
    fn piece(&self, offset: u64, len: u64) -> Option<&[u8]> {
        self.pieces.iter().find_map(|(start, bytes)| {
            let at = offset.checked_sub(*start)?;
            (at + len <= bytes.len() as u64).then(|| &bytes[at as usize..(at + len) as usize])
        })
    }
}

impl Object {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Object::File(f) => f.len(),
            Object::Remote(r) => r.info.len,
        }
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the object is local (reads are cheap and synchronous).
    pub fn is_local(&self) -> bool {
        matches!(self, Object::File(_))
    }

    /// Largest gap between two byte ranges still read as one.
    pub fn merge_gap(&self) -> u64 {
        match self {
            Object::File(_) => crate::read::MERGE_GAP,
            Object::Remote(_) => crate::read::REMOTE_MERGE_GAP,
        }
    }

    /// The path or URL, for messages and as the index-cache key.
    pub fn name(&self) -> String {
        match self {
            Object::File(f) => f.path().display().to_string(),
            Object::Remote(r) => r.remote.key_url(&r.key),
        }
    }

    /// `(length, version stamp)`: what a cached index must match.
    pub fn version(&self) -> (u64, u64) {
        match self {
            Object::File(f) => (f.len(), f.modified() ^ f.inode().rotate_left(32)),
            Object::Remote(r) => (r.info.len, r.info.stamp),
        }
    }

    /// Reads `len` bytes at `offset` into the front of `buf` (which must be
    /// long enough); the range must lie inside the object.
    pub fn read_into(&self, offset: u64, len: u64, buf: &mut [u8]) -> Result<()> {
        match self {
            Object::File(f) => f.read_into(offset, len, buf),
            Object::Remote(r) => {
                if offset.checked_add(len).is_none_or(|end| end > r.info.len)
                    || len > buf.len() as u64
                {
                    return Err(Error::decode(format!(
                        "{}: range {offset}+{len} exceeds its {} bytes",
                        self.name(),
                        r.info.len
                    )));
                }
                let dst = &mut buf[..len as usize];
                if len == 0 {
                    return Ok(());
                }
                if let Some(piece) = r.piece(offset, len) {
                    dst.copy_from_slice(piece);
                    return Ok(());
                }
                let fetched = r.remote.fetch(&r.key, Fetch::Range(offset..offset + len))?;
                let (_, bytes, _) = fetched.ok_or_else(|| {
                    Error::storage(format!("{}: the object disappeared", self.name()))
                })?;
                dst.copy_from_slice(&bytes);
                Ok(())
            }
        }
    }

    /// Reads `len` bytes at `offset`; the range must lie inside the object.
    pub fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        match self {
            Object::File(f) => f.read_at(offset, len),
            Object::Remote(_) => {
                let mut buf = vec![0u8; len.min(self.len()) as usize];
                self.read_into(offset, len, &mut buf)?;
                Ok(buf)
            }
        }
    }

    /// Reads the whole object.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read_at(0, self.len())
    }
}

/// A local file modified this recently is not cached: file times are
/// coarse (a few milliseconds, seconds on some filesystems), so a second
/// write of the same length within one tick would keep its version.
const RACY_NANOS: u64 = 2_000_000_000;

/// The decoded index of the shard `object` with `n` inner chunks, from the
/// index cache when it holds this version of the object.
pub fn load_index(object: &Object, s: &ShardingSpec, n: u64) -> Result<Arc<CachedIndex>> {
    let load = || {
        let (start, len) = shard::index_range(s, n, object.len())?;
        let bytes = object.read_at(start, len)?;
        shard::decode_index(s, &bytes, object.len())
    };
    if let Object::File(f) = object {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        if f.modified() == 0 || now.saturating_sub(f.modified()) < RACY_NANOS {
            return Ok(Arc::new(CachedIndex {
                len: object.len(),
                stamp: 0,
                entries: load()?,
            }));
        }
    }
    index_cache::get_or_load(&object.name(), object.version(), load)
}
