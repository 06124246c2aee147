//! Write-then-read round trips through the public engine for chains the
//! peers do not write: nested sharding, index at the start, transpose,
//! compression after sharding, strided and permuted outputs with casts.

use std::path::PathBuf;
use tessera::dtype::DType;
use tessera::progress::Progress;
use tessera::read::{self, Array};
use tessera::region::Request;
use tessera::spec::ArraySpec;
use tessera::store::FsStore;
use tessera::write;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 3-D uint16 array [12, 10, 9] with the given chunk shape and codec chain words.
fn array(name: &str, chunk: [i64; 3], chain: &[i64]) -> Array {
    let mut words = vec![1, 3, DType::UInt16 as i64, 0, 47, 12, 10, 9];
    words.extend_from_slice(&chunk);
    words.extend_from_slice(chain);
    let spec = ArraySpec::decode(&words, &7u16.to_le_bytes()).unwrap();
    Array {
        store: FsStore::new(temp_dir(name)).into(),
        spec,
    }
}

fn data() -> Vec<u16> {
    (0..12 * 10 * 9).map(|i| ((i * 37) % 1000) as u16).collect()
}

/// Reads `sel` (start, count, step per dim) in output axis order `order`, as float32.
fn read_f32(a: &Array, sel: [(i64, i64, i64); 3], order: [usize; 3]) -> Vec<f32> {
    let counts = sel.map(|s| s.1);
    let mut strides = [0i64; 3];
    let mut acc = 1;
    for &d in order.iter().rev() {
        strides[d] = acc;
        acc *= counts[d];
    }
    let mut words = vec![DType::Float32 as i64, 3];
    for d in 0..3 {
        words.extend_from_slice(&[sel[d].0, sel[d].1, sel[d].2, strides[d]]);
    }
    let request = Request::decode(&words, &a.spec.shape).unwrap();
    let buffer = read::read(a, &request, &Progress::default()).unwrap();
    let bytes = unsafe { std::slice::from_raw_parts(buffer.as_ptr(), buffer.len()) };
    bytemuck::cast_slice::<u8, f32>(bytes).to_vec()
}

fn expected(values: &[u16], sel: [(i64, i64, i64); 3], order: [usize; 3]) -> Vec<f32> {
    let counts = sel.map(|s| s.1 as usize);
    let mut out = vec![0f32; counts.iter().product()];
    let mut strides = [0usize; 3];
    let mut acc = 1;
    for &d in order.iter().rev() {
        strides[d] = acc;
        acc *= counts[d];
    }
    for i in 0..counts[0] {
        for j in 0..counts[1] {
            for k in 0..counts[2] {
                let (z, y, x) = (
                    (sel[0].0 + i as i64 * sel[0].2) as usize,
                    (sel[1].0 + j as i64 * sel[1].2) as usize,
                    (sel[2].0 + k as i64 * sel[2].2) as usize,
                );
                out[i * strides[0] + j * strides[1] + k * strides[2]] =
                    values[(z * 10 + y) * 9 + x] as f32;
            }
        }
    }
    out
}

fn check(a: &Array) {
    let values = data();
    write::write_region(
        a,
        bytemuck::cast_slice(&values),
        &[0, 0, 0],
        &[12, 10, 9],
        &Progress::default(),
    )
    .unwrap();
    let cases = [
        ([(0, 12, 1), (0, 10, 1), (0, 9, 1)], [0, 1, 2]),
        ([(1, 5, 2), (3, 7, 1), (0, 3, 4)], [2, 0, 1]),
        ([(11, 1, 1), (0, 10, 1), (8, 1, 1)], [1, 2, 0]),
    ];
    for (sel, order) in cases {
        assert_eq!(
            read_f32(a, sel, order),
            expected(&values, sel, order),
            "{sel:?} {order:?}"
        );
    }
    std::fs::remove_dir_all(std::path::PathBuf::from(a.store.describe(""))).unwrap();
}

const INNER: [i64; 6] = [2, 1, 0, 2, 3, 0]; // bytes LE, zstd 3
const INDEX: [i64; 4] = [2, 1, 0, 3]; // bytes LE, crc32c

#[test]
fn nested_sharding() {
    // shard 8×8×8 → inner shards 4×4×4 → chunks 2×2×2
    let mut chain = vec![1, 5, 4, 4, 4, 0, 1, 5, 2, 2, 2, 1];
    chain.extend_from_slice(&INNER);
    chain.extend_from_slice(&INDEX);
    chain.extend_from_slice(&INDEX);
    check(&array("nested", [8, 8, 8], &chain));
}

#[test]
fn index_at_start_with_transposed_inner_chunks() {
    let mut chain = vec![1, 5, 4, 2, 3, 1, 3, 4, 2, 0, 1];
    chain.extend_from_slice(&[1, 1, 2, 5, 1]); // bytes BE, zstd 5 with checksum
    chain.extend_from_slice(&INDEX);
    check(&array("start", [8, 4, 6], &chain));
}

#[test]
fn compression_after_sharding_and_plain_chunks() {
    let mut chain = vec![2, 5, 2, 2, 3, 0];
    chain.extend_from_slice(&INNER);
    chain.extend_from_slice(&INDEX);
    chain.extend_from_slice(&[2, 1, 0]);
    check(&array("outer-zstd", [4, 4, 6], &chain));
    check(&array("plain", [5, 3, 4], &[3, 1, 0, 2, 1, 1, 3]));
}

#[test]
fn corrupt_inner_chunk_is_a_decode_error() {
    let mut chain = vec![1, 5, 4, 4, 4, 0];
    chain.extend_from_slice(&INNER);
    chain.extend_from_slice(&INDEX);
    let a = array("corrupt", [8, 8, 8], &chain);
    let values = data();
    write::write_region(
        &a,
        bytemuck::cast_slice(&values),
        &[0, 0, 0],
        &[12, 10, 9],
        &Progress::default(),
    )
    .unwrap();
    let shard = std::path::PathBuf::from(a.store.describe("c/0/0/0"));
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[10] ^= 0xff;
    bytes[11] ^= 0xff;
    std::fs::write(&shard, &bytes).unwrap();
    let words = [DType::UInt16 as i64, 3, 0, 4, 1, 1, 0, 4, 1, 1, 0, 4, 1, 1];
    let mut words = words.to_vec();
    // compact strides for [4, 4, 4]
    words[5] = 16;
    words[9] = 4;
    let request = Request::decode(&words, &a.spec.shape).unwrap();
    let err = read::read(&a, &request, &Progress::default()).unwrap_err();
    assert_eq!(err.kind, tessera::error::ErrorKind::DecodeError, "{err}");
    assert!(err.message.contains("c/0/0/0"), "{err}");
    std::fs::remove_dir_all(std::path::PathBuf::from(a.store.describe(""))).unwrap();
}
