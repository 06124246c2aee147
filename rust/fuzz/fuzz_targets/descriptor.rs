//! Fuzz target: see `tessera::fuzz_entry::descriptor`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera::fuzz_entry::descriptor(data));
