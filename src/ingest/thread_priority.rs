//! A lower scheduling priority for a thread whose work can wait: the import's reader runs
//! ahead of the resolver, and on a small machine it competes for the same cores as the
//! resolver and the writer, whose chain sets the import's pace.

/// The nice value the import's reader runs at: the reader parses a batch or two ahead, so
/// it only needs the CPU the resolver and the writer leave idle.
pub(crate) const READER_NICE: i32 = 10;

/// Lower the calling thread's priority to `nice` (Linux keeps a nice value per thread).
/// Returns whether it took effect; elsewhere, or where the system refuses, the thread
/// keeps its priority and nothing else changes.
pub(crate) fn lower_this_thread(nice: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` and `setpriority` take no pointers and touch no memory of ours;
        // on failure the thread's priority is as it was.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nice;
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: as above; `getpriority` only reads the thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[test]
    fn only_the_calling_thread_is_lowered() {
        let before = nice_of_this_thread();
        let lowered = std::thread::spawn(|| (lower_this_thread(READER_NICE), nice_of_this_thread()))
            .join()
            .expect("the lowered thread ran to its end");
        if before <= READER_NICE {
            // (A test runner already niced further could not be lowered to this value.)
            assert_eq!(lowered, (true, READER_NICE));
        }
        assert_eq!(nice_of_this_thread(), before, "the spawning thread keeps its priority");
    }
}
