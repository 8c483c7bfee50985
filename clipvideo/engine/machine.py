"""What a benchmark prints beside its table: the machine's load and the thread count.

Timings taken while other processes compete for the cores are not comparable with quiet ones
(measured: the same EVL benchmark ran 4x slower at a load average near 5 on 2 cores), so every
`benchmarks/` script prints this and warns when the 1-minute load average exceeds its threads.
"""

import os
import resource

import torch


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):  # not on every platform
        return None


def load_report(threads: int | None = None, before: tuple[float, float, float] | None = None) -> str:
    """One line (two with the warning): load average (1/5/15 min) now and, if given, at the start,
    torch threads and CPU count; WARNING when the 1-minute load average exceeds `threads`."""
    threads = threads or torch.get_num_threads()
    now = load_average()
    if now is None:
        return f"machine: load average unavailable; {threads} torch threads, {os.cpu_count()} CPUs"
    line = f"machine: load average {now[0]:.2f} / {now[1]:.2f} / {now[2]:.2f} (1 / 5 / 15 min)"
    if before is not None:
        line += f", {before[0]:.2f} (1 min) at the start"
    line += f"; {threads} torch threads, {os.cpu_count()} CPUs"
    worst = max(now[0], before[0] if before else 0.0)
    if worst > threads:
        line += (f"\nWARNING: the load average ({worst:.2f}) exceeds the {threads} threads used: other processes "
                 "competed for the cores, so these timings are slower than on a quiet machine")
    return line


# Peak memory of this process on Linux: VmHWM after resetting it through /proc/self/clear_refs.


def resident_kib() -> int:
    """Resident set size now, KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def reset_peak() -> bool:
    """Start a new peak-RSS window; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_kib(resettable: bool) -> int:
    """Peak resident set size since `reset_peak()` (or since the start, where it could not reset), KiB."""
    if resettable:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux; never resets
