"""Peak resident memory of this process, per phase.

Linux keeps the peak (VmHWM) in /proc/self/status and lets a process reset it by writing "5"
to /proc/self/clear_refs; elsewhere we fall back to the lifetime peak from getrusage.

Example::

    reset_peak_rss(); do_work(); print(peak_rss_mb())
"""

from __future__ import annotations

import resource


_peak_before_resets = 0.0  # the largest peak any reset_peak_rss() call has cleared


def reset_peak_rss() -> None:
    """Start a new phase's peak. The peak being cleared is remembered for process_peak_rss_mb()."""
    global _peak_before_resets
    _peak_before_resets = max(_peak_before_resets, peak_rss_mb())
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # not Linux, or not permitted: the lifetime peak is reported instead


def _status_mb(key: str) -> float | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    now = _status_mb("VmRSS")
    return now if now is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_peak_rss_mb() -> float:
    """Peak resident memory over the whole life of this process, phases included.

    Not ``getrusage``: on Linux its ru_maxrss is the same high-water mark that clear_refs resets, so
    after a reset it reports the latest phase only (a reaped child's ru_maxrss too)."""
    return max(_peak_before_resets, peak_rss_mb())
