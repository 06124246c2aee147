//! Counters that long calls update and callers poll (progress and statistics).

use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Number of counters in [`Progress::snapshot`].
pub const COUNTER_COUNT: usize = 8;

/// Work counters shared between a running call and the code polling it.
#[derive(Debug, Default)]
pub struct Progress {
    /// Outer chunks (shards or plain chunks) the call will visit.
    pub outer_total: AtomicU64,
    /// Outer chunks finished.
    pub outer_done: AtomicU64,
    /// Chunks (inner chunks for shards) the selection touches.
    pub chunks_touched: AtomicU64,
    /// Touched chunks that are stored (the rest read as the fill value).
    pub chunks_stored: AtomicU64,
    /// Bytes read from storage, shard indexes included.
    pub bytes_read: AtomicU64,
    /// Read operations issued.
    pub read_ops: AtomicU64,
    /// Bytes produced by decoding chunks.
    pub bytes_decoded: AtomicU64,
    /// Bytes written to storage.
    pub bytes_written: AtomicU64,
    /// Set by the caller to stop the call: loops check it between chunks.
    pub cancelled: AtomicBool,
}

impl Progress {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Asks the call using these counters to stop at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// An [`ErrorKind::Cancelled`] error once [`Progress::cancel`] was called.
    pub fn check(&self) -> Result<()> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(Error::new(ErrorKind::Cancelled, "cancelled"))
        } else {
            Ok(())
        }
    }

    /// The counters, in field order.
    pub fn snapshot(&self) -> [u64; COUNTER_COUNT] {
        [
            &self.outer_total,
            &self.outer_done,
            &self.chunks_touched,
            &self.chunks_stored,
            &self.bytes_read,
            &self.read_ops,
            &self.bytes_decoded,
            &self.bytes_written,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_fails_only_after_cancel() {
        let p = Progress::default();
        assert!(p.check().is_ok());
        p.cancel();
        assert_eq!(p.check().unwrap_err().kind, ErrorKind::Cancelled);
    }
}
