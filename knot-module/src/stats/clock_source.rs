//! The two clocks the latency clock (`clock`) can read: the CPU's
//! time-stamp counter and the kernel's CLOCK_MONOTONIC. Reading them takes
//! an `unsafe` intrinsic (RDTSC, CPUID) or a libc call, so they sit here,
//! apart from `clock`'s safe arithmetic. This module depends on nothing
//! else in the crate and never touches knotd: it is a platform boundary,
//! not part of the host adapter.

/// CLOCK_MONOTONIC in nanoseconds. One vDSO call: `Instant::now()` plus
/// `elapsed()` costs several times the instructions (checked timespec
/// arithmetic, u128 nanoseconds), twice per query.
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec; CLOCK_MONOTONIC exists on
    // every Linux, so the call cannot fail and ts is always written.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // Both fields are non-negative for CLOCK_MONOTONIC.
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The CPU's time-stamp counter; 0 where there is none (see
/// [`tsc_is_invariant`], which gates its use).
#[inline(always)]
pub(crate) fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86_64 CPU and only reads the
        // counter; user mode may execute it unless the kernel set CR4.TSD,
        // which Linux does only for seccomp-strict or PR_SET_TSC processes
        // (tsc_is_invariant checks PR_GET_TSC before the TSC is chosen).
        unsafe { std::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Whether the time-stamp counter ticks at a constant rate through
/// frequency changes and sleep states (CPUID 0x8000_0007, EDX bit 8,
/// "invariant TSC") and this process may read it.
pub(crate) fn tsc_is_invariant() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        // `__cpuid` became a safe function in recent Rust; the workspace's
        // minimum Rust still needs the unsafe block.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86_64 CPU; leaf 0x8000_0000
        // reports the highest extended leaf, read before asking for one.
        let max_extended = unsafe { __cpuid(0x8000_0000) }.eax;
        if max_extended < 0x8000_0007 {
            return false;
        }
        #[allow(unused_unsafe)]
        // SAFETY: as above; the leaf is supported (checked).
        let invariant = unsafe { __cpuid(0x8000_0007) }.edx & (1 << 8) != 0;
        let mut mode: libc::c_int = 0;
        // SAFETY: PR_GET_TSC writes one int through the pointer given.
        let ret = unsafe { libc::prctl(libc::PR_GET_TSC, &mut mode as *mut libc::c_int) };
        invariant && ret == 0 && mode == libc::PR_TSC_ENABLE
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
