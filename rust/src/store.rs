//! Local filesystem store: chunk keys to files, ranged reads, atomic writes.
//!
//! Reads stay inside the store: a chunk path whose resolution leaves the
//! store's folder (a symlink to `/etc/passwd`, or a linked folder elsewhere)
//! is refused. On Linux this is `openat2` with `RESOLVE_BENEATH` relative to
//! the store's folder (one system call); elsewhere the resolved path is
//! compared with the resolved folder.

use crate::error::{Error, ErrorKind, Result};
use std::fs::File;
use std::io::ErrorKind as IoKind;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// A store rooted at the folder of one array.
#[derive(Debug)]
pub struct FsStore {
    root: PathBuf,
    /// The folder, opened once for confined opens (`None`: it could not be).
    folder: std::sync::OnceLock<Option<File>>,
}

/// An open chunk or shard file and its length.
#[derive(Debug)]
pub struct StoredObject {
    file: File,
    len: u64,
    /// Modification time in nanoseconds since the epoch (0: unknown).
    modified: u64,
    /// Inode number (a file replaced by another has another).
    inode: u64,
    path: PathBuf,
}

impl FsStore {
    /// A store over the folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            folder: std::sync::OnceLock::new(),
        }
    }

    /// Opens the file under `key` for reading without leaving the store.
    fn open_confined(&self, key: &str, path: &std::path::Path) -> std::io::Result<File> {
        let outside = || {
            std::io::Error::new(
                IoKind::PermissionDenied,
                "its path leads outside the store (a symbolic link or \"..\"); refused",
            )
        };
        let Some(folder) = self.folder.get_or_init(|| File::open(&self.root).ok()) else {
            // the folder itself is missing or unreadable: so is the chunk
            return File::open(path);
        };
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::{AsRawFd, FromRawFd};
            let name = std::ffi::CString::new(key).map_err(|_| outside())?;
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
            how.resolve = libc::RESOLVE_BENEATH;
            // SAFETY: valid folder descriptor, NUL-terminated name, `how` of its size.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    folder.as_raw_fd(),
                    name.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )
            };
            if fd >= 0 {
                // SAFETY: a descriptor the kernel just gave us, owned from here.
                return Ok(unsafe { File::from_raw_fd(fd as i32) });
            }
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EXDEV) => return Err(outside()),
                Some(libc::ENOSYS) | Some(libc::EPERM) => {} // no openat2: check below
                _ => return Err(error),
            }
        }
        let file = File::open(path)?;
        let resolved = std::fs::canonicalize(path)?;
        let root = std::fs::canonicalize(&self.root)?;
        if resolved.starts_with(&root) {
            Ok(file)
        } else {
            Err(outside())
        }
    }

    /// Path of the object stored under `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Opens the object under `key`; `None` when it does not exist.
    pub fn open(&self, key: &str) -> Result<Option<StoredObject>> {
        let path = self.path(key);
        match self.open_confined(key, &path) {
            Ok(file) => {
                let meta = file
                    .metadata()
                    .map_err(|e| Error::storage(format!("{}: {e}", path.display())))?;
                if !meta.is_file() {
                    return Err(Error::storage(format!("{} is not a file", path.display())));
                }
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64);
                Ok(Some(StoredObject {
                    file,
                    len: meta.len(),
                    modified,
                    inode: std::os::unix::fs::MetadataExt::ino(&meta),
                    path,
                }))
            }
            Err(e) if e.kind() == IoKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes `bytes` under `key` atomically (temporary file, then rename).
    pub fn write(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        let fail = |e: std::io::Error| Error::storage(format!("writing {}: {e}", path.display()));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        // A name of its own per write: keys like `0.1` have "extensions", and
        // several chunks are written at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}-{n}", std::process::id()));
        let tmp = path.with_file_name(name);
        std::fs::write(&tmp, bytes).map_err(fail)?;
        std::fs::rename(&tmp, &path).map_err(fail)
    }

    /// Removes the object under `key` if it exists.
    pub fn remove(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != IoKind::NotFound => {
                Err(Error::storage(format!("removing {}: {e}", path.display())))
            }
            _ => Ok(()),
        }
    }
}

impl StoredObject {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Modification time in nanoseconds since the epoch (0: unknown).
    pub fn modified(&self) -> u64 {
        self.modified
    }

    /// Inode number.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Path, for messages.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reads `len` bytes at `offset`; the range must lie inside the object.
    pub fn read_at(&self, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut buf = vec![
            0u8;
            usize::try_from(len)
                .unwrap_or(usize::MAX)
                .min(self.len as usize)
        ];
        self.read_into(offset, len, &mut buf)?;
        Ok(buf)
    }

    /// Reads `len` bytes at `offset` into the front of `buf` (which must be
    /// long enough); the range must lie inside the object.
    pub fn read_into(&self, offset: u64, len: u64, buf: &mut [u8]) -> Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.len) || len > buf.len() as u64 {
            return Err(Error::new(
                ErrorKind::DecodeError,
                format!(
                    "{}: range {offset}+{len} exceeds its {} bytes",
                    self.path.display(),
                    self.len
                ),
            ));
        }
        self.file
            .read_exact_at(&mut buf[..len as usize], offset)
            .map_err(|e| Error::storage(format!("{}: {e}", self.path.display())))
    }

    /// Reads the whole object.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.read_at(0, self.len)
    }
}
