//! The `zarrs` crate as a reader in the tessera benchmark.
//!
//!     zarrs-read serve              line protocol with bench/run.ts (see src/lib.rs)
//!     zarrs-read run CASES.json     standalone: check pass + rounds, one JSON document
//!
//! Each read is `Array::retrieve_array_subset_into` into a freshly allocated
//! `Vec<u16>` of the selection's shape (as every other reader returns new
//! memory), with zarrs' default codec options: its rayon global pool on all
//! cores, chunk and codec concurrency chosen by zarrs, checksums validated.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tessera_bench_native::{main_with, num_elements, out_shape, Check, Reader, Sel};
use unsafe_cell_slice::UnsafeCellSlice;
use zarrs::array::data_type::UInt16DataType;
use zarrs::array::{Array, ArrayBytesDecodeIntoTarget, ArrayBytesFixedDisjointView, ArraySubset};
use zarrs::filesystem::FilesystemStore;

struct ZarrsReader {
    arrays: BTreeMap<String, Array<FilesystemStore>>,
}

impl Reader for ZarrsReader {
    fn read(
        &mut self,
        store: &str,
        _case: &str,
        _index: usize,
        sel: &Sel,
        check: bool,
    ) -> Result<Check, String> {
        let array = self
            .arrays
            .get(store)
            .ok_or_else(|| format!("store {store:?} not open"))?;
        let ranges: Vec<_> = sel.iter().map(|d| d.start..d.stop).collect();
        let subset = ArraySubset::new_with_ranges(&ranges);
        let n = usize::try_from(num_elements(sel)).map_err(|e| e.to_string())?;
        let mut out = vec![0u16; n];
        {
            let shape = subset.shape().to_vec();
            // SAFETY: a u16 buffer viewed as its bytes; the view covers all of it
            // and is the only one.
            let bytes =
                unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u8>(), n * 2) };
            let mut view = unsafe {
                ArrayBytesFixedDisjointView::new(
                    UnsafeCellSlice::new(bytes),
                    2,
                    &shape,
                    ArraySubset::new_with_shape(shape.clone()),
                )
            }
            .map_err(|e| e.to_string())?;
            array
                .retrieve_array_subset_into(&subset, ArrayBytesDecodeIntoTarget::Fixed(&mut view))
                .map_err(|e| e.to_string())?;
        }
        Ok(if check {
            Check::Full {
                shape: out_shape(sel),
                sums: tessera_bench_native::checksum(&out),
            }
        } else {
            Check::None
        })
    }
}

fn main() {
    std::process::exit(main_with(|setup| {
        let mut arrays = BTreeMap::new();
        let mut open_ms = serde_json::Map::new();
        for (name, path) in &setup.stores {
            let started = Instant::now();
            let store = FilesystemStore::new(path).map_err(|e| format!("{path}: {e}"))?;
            let array = Array::open(Arc::new(store), "/").map_err(|e| format!("{path}: {e}"))?;
            if !array.data_type().is::<UInt16DataType>() {
                return Err(format!(
                    "{path}: expected uint16, got {}",
                    array.data_type()
                ));
            }
            open_ms.insert(
                name.clone(),
                json!(started.elapsed().as_secs_f64() * 1000.0),
            );
            arrays.insert(name.clone(), array);
        }
        let threads = rayon::current_num_threads();
        let mut readers: BTreeMap<String, Box<dyn Reader>> = BTreeMap::new();
        readers.insert("zarrs".into(), Box::new(ZarrsReader { arrays }));
        let info = json!({
            "version": zarrs::version::version_str(),
            "threads": threads,
            "how": format!(
                "Array::retrieve_array_subset_into (sync, FilesystemStore) into a new Vec<u16> per read; \
                 default CodecOptions: rayon global pool ({threads} threads), chunk/codec concurrency \
                 chosen by zarrs, checksums validated"
            ),
            "open_ms": open_ms,
        });
        Ok((readers, info))
    }));
}
