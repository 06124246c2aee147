//! Fuzz target: see `tessera::fuzz_entry::omearrow`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera::fuzz_entry::omearrow(data));
