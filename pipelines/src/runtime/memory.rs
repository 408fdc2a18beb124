//! Freed memory handed back to the system after sessions close.
//!
//! A session's pipeline is hundreds of small allocations made on many
//! threads, so glibc spreads them over its arenas; once freed, the pages
//! stay with the process (glibc returns only the free top of the main
//! heap), and the resident size looks like a leak that never goes back.
//! `malloc_trim(0)` returns every whole free page of every arena. It walks
//! all arenas, so it runs on a thread of its own a moment after the last of
//! a burst of closes, at most once per [`SETTLE`].

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::Duration;

/// How long after a close the trim runs; closes meanwhile share it.
const SETTLE: Duration = Duration::from_secs(1);

/// Something was freed: memory goes back to the system shortly.
pub(crate) fn released() {
    static TRIMMER: OnceLock<Option<SyncSender<()>>> = OnceLock::new();
    let trimmer = TRIMMER.get_or_init(|| {
        let (wake, woken) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("memory-trim".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    std::thread::sleep(SETTLE);
                    while woken.try_recv().is_ok() {}
                    trim();
                }
            })
            .ok()
            .map(|_| wake)
    });
    if let Some(wake) = trimmer {
        // Full: a trim is already due and will cover this close too.
        if let Err(TrySendError::Disconnected(())) = wake.try_send(()) {
            tracing::debug!("memory trim thread gone");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    extern "C" {
        /// glibc: releases free memory of every arena; 1 if any was.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim takes no pointers and is thread-safe.
    unsafe { malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
