"""How a long-running server's memory plateaus without paying for it on every request: glibc's malloc thresholds
fixed, and its arenas capped."""

from __future__ import annotations

# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def limit_malloc_retention(
    mmap_threshold_bytes: int = 8 << 20, trim_threshold_bytes: int = 16 << 20, arena_max: int = 2
) -> bool:
    """Fix glibc's malloc thresholds and cap its arenas, so a long-running server's memory plateaus while a request's
    buffers are reused rather than mapped afresh.

    Left alone, glibc slides its mmap and trim thresholds up after large frees and gives each thread's burst its own
    arena (up to 8 per core), so the memory each arena keeps creeps with the load (measured at concurrency 16 for
    40 s: worker RSS 721 to 752 MiB). Fixing the mmap threshold at 1 MiB stopped the creep but made every decoded
    image, letterbox and model input (1-3 MB each for a 720p photo) a fresh mmap, page-faulted in and unmapped per
    request: measured once on 2 cores (issue 18, no script prints it), `decode_image` of the streamer photo took 7.0
    ms against 2.4 with reused memory, the letterbox 4.7 against 2.0, and the server's read-decode-letterbox stage
    12.1 against 5.5 ms. With the default 8 MiB, a request's own buffers for a photo up to about 2.8 MP (1920x1080
    decoded is 6.2 MB; a 640 letterbox at most 4.9 MB) come from the arenas and are reused; larger ones (a bigger
    photo, a batch's stacked input) are mapped and given back when freed; an arena returns memory once more than
    `trim_threshold_bytes` lies free at its top; and there are at most `arena_max` arenas, so what is kept is
    bounded by that many high-water marks. Measured the same way, 60 s at concurrency 16 on 2 busy cores (the
    server's one process, no arbiter): RSS 710-760 MiB with these values, 712-720 with the 1 MiB threshold, 786-821
    with 32 MiB ones (OpenVINO's larger working buffers then stay in the arenas too); benchmarks/bench_serve.py
    --soak prints the served figure. Call it once, early, before the worker threads start. No-op (False) where the
    C library is not glibc.

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
