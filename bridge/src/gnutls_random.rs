//! `gnutls_rnd`, defined here so libnice's calls to it come to us.
//!
//! libnice draws its STUN transaction ids and ICE credentials from
//! GnuTLS's `gnutls_rnd`. GnuTLS 3.7 (Debian 12) gives every thread that
//! calls it a random-generator state of its own and frees that state only
//! when the library is unloaded, never when the thread ends. webrtcbin runs
//! each session's ICE agent on threads of its own that end with the
//! session, so every WebRTC session left its generator states behind:
//! memory that grew with every session for the life of the process.
//!
//! The binary exports this function (bridge/build.rs), and the dynamic
//! linker binds a symbol to the first object defining it, the executable
//! first: libnice's `gnutls_rnd` is this one, which keeps no state and
//! reads the kernel's generator (`getrandom`, the source GnuTLS seeds from,
//! fit for keys). GnuTLS's own calls to it land here too; nothing else of
//! GnuTLS's changes. Measured outside the bridge: threads that each call
//! GnuTLS's `gnutls_rnd` once and end leave ~0.2 KB apiece, none with this.

use std::ffi::{c_int, c_void};

/// `int gnutls_rnd(gnutls_rnd_level_t level, void *data, size_t len)`:
/// fills `data` with `len` random bytes, whatever the level (the kernel's
/// generator is fit for keys, the strictest level); 0 on success, a
/// negative GnuTLS error code otherwise.
///
/// # Safety
/// `data` must be valid for writing `len` bytes, as GnuTLS requires.
#[no_mangle]
pub unsafe extern "C" fn gnutls_rnd(_level: c_int, data: *mut c_void, len: usize) -> c_int {
    /// GNUTLS_E_RANDOM_FAILED.
    const RANDOM_FAILED: c_int = -206;
    if len == 0 {
        return 0;
    }
    if data.is_null() {
        return RANDOM_FAILED;
    }
    // SAFETY: the caller hands us `len` writable bytes at `data`.
    let buf = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
    match fill(buf) {
        Ok(()) => 0,
        Err(_) => RANDOM_FAILED,
    }
}

fn fill(mut buf: &mut [u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid writable slice of `buf.len()` bytes.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        buf = &mut buf[n as usize..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::gnutls_rnd;

    #[test]
    fn fills_the_whole_buffer_with_fresh_bytes_each_call() {
        let draw = || {
            let mut buf = [0u8; 64];
            // SAFETY: buf is 64 writable bytes.
            assert_eq!(unsafe { gnutls_rnd(2, buf.as_mut_ptr().cast(), buf.len()) }, 0);
            buf
        };
        let (a, b) = (draw(), draw());
        assert_ne!(a, b);
        assert!(a.iter().filter(|&&x| x == 0).count() < 8, "64 random bytes, mostly zeros: {a:?}");
        // SAFETY: a null buffer of length 0 is never written.
        assert_eq!(unsafe { gnutls_rnd(0, std::ptr::null_mut(), 0) }, 0);
    }
}
