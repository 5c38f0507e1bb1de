"""How a long-running server's memory plateaus without paying for it on every request: glibc's malloc thresholds
fixed, and its arenas capped."""

from __future__ import annotations

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
# glibc's own ceiling for its sliding mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX).
GLIBC_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def limit_malloc_retention(
    mmap_threshold_bytes: int = GLIBC_MMAP_THRESHOLD_MAX,
    trim_threshold_bytes: int = GLIBC_MMAP_THRESHOLD_MAX,
    arena_max: int = 4,
) -> bool:
    """Fix glibc's malloc thresholds and cap its arenas, so a long-running server's memory plateaus and a request's
    buffers are reused rather than mapped afresh.

    Left alone, glibc slides its mmap and trim thresholds up after large frees and gives each thread's burst its own
    arena (up to 8 per core), so the memory each arena keeps creeps with the load (measured at concurrency 16 for
    40 s: worker RSS 721 to 752 MiB). Fixing the mmap threshold at 1 MiB stopped the creep but made every decoded
    image, letterbox and model input (1-3 MB each for a 720p photo) a fresh mmap, page-faulted in and unmapped per
    request: measured once on 2 cores (issue 18, no script prints it), `decode_image` of the streamer photo took 7.0
    ms against 2.4 with the settings here, the letterbox 4.7 against 2.0, and the server's read-decode-letterbox
    stage 12.1 against 5.5 ms. So the thresholds are fixed instead at glibc's own ceiling: buffers under 32 MiB (a
    10 MP image decoded) come from the arenas and are reused; larger ones are mapped and returned at once; an arena
    gives memory back once more than `trim_threshold_bytes` lies free at its top; and at most `arena_max` arenas
    exist, so what is kept is bounded by that many high-water marks (benchmarks/bench_serve.py --soak shows the
    plateau). Call it once, early, before the worker threads start. No-op (False) where the C library is not
    glibc.

    Args:
        mmap_threshold_bytes: allocations at least this large are mmapped (and unmapped when freed).
        trim_threshold_bytes: free memory at the top of an arena beyond this goes back to the system.
        arena_max: most malloc arenas.

    Returns:
        Whether glibc accepted every setting.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    settings = (
        (_M_MMAP_THRESHOLD, mmap_threshold_bytes),
        (_M_TRIM_THRESHOLD, trim_threshold_bytes),
        (_M_ARENA_MAX, arena_max),
    )
    return all([bool(libc.mallopt(parameter, value)) for parameter, value in settings])
