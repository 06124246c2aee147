//! Fetching what a read of a remote array needs before decoding starts, so
//! latency is paid once per round rather than once per object:
//!
//! 1. every shard index the read touches, concurrently (indexes in the
//!    cache cost no request); plain chunks are fetched whole in this round;
//! 2. every inner-chunk byte range the selection needs, ranges close
//!    together merged exactly as the read engine will read them, concurrently.
//!
//! Up to the store's `concurrency` requests are in flight in each round.
//! The result maps each outer chunk key to its object (`None`: missing, so
//! the read fills it) holding the fetched pieces; decoding then runs from
//! memory on the worker pool.

use crate::codec;
use crate::error::{Error, Result};
use crate::index_cache::{self, CachedIndex};
use crate::read::{merge_ranges, partial_shard, REMOTE_MERGE_GAP};
use crate::region::{for_each_combination, split, DimSel};
use crate::remote::{Fetch, ObjectInfo};
use crate::shard;
use crate::spec::ArraySpec;
use crate::storage::{RemoteArray, RemoteObject};
use std::collections::HashMap;
use std::sync::Arc;

/// Objects fetched for a read, by outer chunk key.
pub type Prefetched = HashMap<String, Option<RemoteObject>>;

/// A shard's index, and the index bytes when they were fetched for this read.
type IndexOf = Option<(Arc<CachedIndex>, Option<(u64, bytes::Bytes)>)>;

/// One outer chunk a read touches: its key and the selections inside it
/// (in the array's dimension order; a batch may cut several samples from
/// one chunk).
pub struct Need<'a> {
    /// The chunk key.
    pub key: String,
    /// The selections inside the chunk.
    pub sels: Vec<&'a [DimSel]>,
}

/// Fetches what reading `needs` of the remote array `r` takes; with
/// `indexes_only` (explain), only shard indexes and object lengths.
pub fn prefetch(
    r: &RemoteArray,
    spec: &ArraySpec,
    needs: &[Need<'_>],
    indexes_only: bool,
) -> Result<Prefetched> {
    let remote = &r.remote;
    let Some(s) = partial_shard(&spec.codecs) else {
        let what = if indexes_only {
            Fetch::Head
        } else {
            Fetch::Whole
        };
        let requests = needs
            .iter()
            .map(|n| (r.full_key(&n.key), what.clone()))
            .collect();
        let fetched = remote.fetch_all(requests)?;
        return Ok(needs
            .iter()
            .zip(fetched)
            .map(|(n, f)| {
                let object = f.map(|(start, bytes, info)| {
                    let pieces = if bytes.is_empty() {
                        vec![]
                    } else {
                        vec![(start, bytes)]
                    };
                    RemoteObject::new(remote.clone(), r.full_key(&n.key), info, pieces)
                });
                (n.key.clone(), object)
            })
            .collect());
    };
    // Round 1: shard indexes.
    let rank = spec.chunk_shape.len();
    let order = spec.codecs.stored_order(rank);
    let shape: Vec<u64> = order.iter().map(|&d| spec.chunk_shape[d]).collect();
    let grid = s.grid(&shape);
    let n = codec::element_count(&grid) as u64;
    let index_len = s.index_size(n);
    let mut indexes: Vec<IndexOf> = Vec::with_capacity(needs.len());
    let mut missing = Vec::new();
    for (i, need) in needs.iter().enumerate() {
        let url = remote.key_url(&r.full_key(&need.key));
        match index_cache::get(&url, None) {
            Some(hit) => indexes.push(Some((hit, None))),
            None => {
                indexes.push(None);
                missing.push(i);
            }
        }
    }
    let what = if s.index_at_start {
        Fetch::Range(0..index_len)
    } else {
        Fetch::Suffix(index_len)
    };
    let requests = missing
        .iter()
        .map(|&i| (r.full_key(&needs[i].key), what.clone()))
        .collect();
    let mut absent = vec![false; needs.len()];
    for (&i, fetched) in missing.iter().zip(remote.fetch_all(requests)?) {
        let url = remote.key_url(&r.full_key(&needs[i].key));
        let Some((start, bytes, info)) = fetched else {
            absent[i] = true;
            continue;
        };
        let decoded = shard::index_range(s, n, info.len)
            .and_then(|_| {
                if bytes.len() as u64 != index_len {
                    return Err(Error::decode(format!(
                        "shard of {} bytes is shorter than its {index_len}-byte index",
                        info.len
                    )));
                }
                shard::decode_index(s, &bytes, info.len)
            })
            .map_err(|e| e.context(&url))?;
        let entry = index_cache::put(
            url,
            CachedIndex {
                len: info.len,
                stamp: info.stamp,
                entries: decoded,
            },
        );
        indexes[i] = Some((entry, Some((start, bytes))));
    }
    // Round 2: the inner chunks' merged byte ranges.
    let mut requests = Vec::new();
    let mut owners = Vec::new();
    if !indexes_only {
        let grid_strides = codec::c_strides(&grid);
        for (i, need) in needs.iter().enumerate() {
            let Some((index, _)) = &indexes[i] else {
                continue;
            };
            let mut ranges = Vec::new();
            for sel in &need.sels {
                let per_dim: Vec<Vec<(u64, DimSel)>> = order
                    .iter()
                    .zip(&s.inner_shape)
                    .map(|(&d, &size)| split(sel[d], size))
                    .collect();
                for_each_combination(&per_dim, |parts| {
                    let linear: u64 = parts.iter().zip(&grid_strides).map(|(p, g)| p.0 * g).sum();
                    if let Some(Some(range)) = index.entries.get(linear as usize) {
                        ranges.push(*range);
                    }
                    Ok(())
                })?;
            }
            ranges.sort_unstable();
            ranges.dedup();
            for (start, end, _) in merge_ranges(ranges.into_iter(), REMOTE_MERGE_GAP) {
                requests.push((r.full_key(&need.key), Fetch::Range(start..end)));
                owners.push(i);
            }
        }
    }
    let mut pieces: Vec<Vec<(u64, bytes::Bytes)>> = vec![Vec::new(); needs.len()];
    for (&i, fetched) in owners.iter().zip(remote.fetch_all(requests)?) {
        match fetched {
            Some((start, bytes, _)) => pieces[i].push((start, bytes)),
            None => {
                return Err(Error::storage(format!(
                    "{}: the shard disappeared while it was read",
                    remote.key_url(&r.full_key(&needs[i].key))
                )))
            }
        }
    }
    Ok(needs
        .iter()
        .enumerate()
        .zip(indexes.into_iter().zip(pieces))
        .map(|((i, need), (index, mut pieces))| {
            let object = match index {
                _ if absent[i] => None,
                None => None,
                Some((index, piece)) => {
                    pieces.extend(piece);
                    let info = ObjectInfo {
                        len: index.len,
                        stamp: index.stamp,
                    };
                    Some(RemoteObject::new(
                        remote.clone(),
                        r.full_key(&need.key),
                        info,
                        pieces,
                    ))
                }
            };
            (need.key.clone(), object)
        })
        .collect())
}
