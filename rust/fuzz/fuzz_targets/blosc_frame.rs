//! Fuzz target: see `tessera::fuzz_entry::blosc_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera::fuzz_entry::blosc_frame(data));
