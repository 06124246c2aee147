//! Fuzz target: see `tessera::fuzz_entry::shard`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera::fuzz_entry::shard(data));
