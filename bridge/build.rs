//! Exports `gnutls_rnd` from the binary so libnice's calls bind to ours
//! (why: src/gnutls_random.rs).

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=gnutls_rnd");
}
