//! Every byte string through the incoming path's stateless part: the
//! screen (scan, validation, canonical rewrite), rsipstack's parser and the
//! dispatcher's decision. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = signaling::triage(data, 8192);
    let _ = signaling::validate::screen(data, signaling::validate::Framing::Stream, 65535, "fuzz");
});
