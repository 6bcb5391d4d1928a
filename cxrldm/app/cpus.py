"""How many CPUs this process may keep busy, for torch's thread count: the CPUs it may run on
(os.sched_getaffinity), its cgroup's CPU quota (cgroup v2 cpu.max; v1 cpu.cfs_quota_us / cpu.cfs_period_us,
the tightest along its cgroup and the cgroups above it) and OMP_NUM_THREADS where set, whichever is fewest.
torch by itself takes the machine's cores: under a quota of fewer CPUs its threads wait on each other.

Those CPUs may be busy with other work: `threads_now` counts how many of them sat idle over a short
interval (/proc/stat) just before a job, and gives the job that many threads (at least 1). On two cores
with two other busy processes, two torch threads wait on each other and on them; one keeps going."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
MEMBERSHIP = Path("/proc/self/cgroup")
STAT = Path("/proc/stat")


def quota_of(folder: Path) -> float | None:
    """CPUs one cgroup folder's quota allows (quota / period); None where it sets none."""
    try:
        quota, period = (folder / "cpu.max").read_text().split()[:2]  # v2: "max 100000" or "150000 100000"
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # v1: -1 is no quota
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def cgroup_cpus(root: Path = CGROUP, membership: Path = MEMBERSHIP) -> float | None:
    """The tightest CPU quota over the process's cgroups (v2 and v1's cpu controller) and their parents."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    mounts = []  # (the hierarchy's folder, the process's cgroup in it)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            mounts.append((root, path))
        elif "cpu" in controllers.split(","):
            mounts += [(root / controllers, path), (root / "cpu", path)]
    quotas = []
    for mount, path in mounts or [(root, "/"), (root / "cpu", "/")]:
        folder = mount / path.strip("/")
        while True:
            quotas.append(quota_of(folder))
            if folder == mount or mount not in folder.parents:
                break
            folder = folder.parent
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def usable_cpus(root: Path = CGROUP, membership: Path = MEMBERSHIP, environ=None) -> int:
    """The fewest of: the CPUs the process may run on, its cgroup quota (rounded down: a quota of 1.5 CPUs
    keeps one thread busy without throttling) and OMP_NUM_THREADS; at least 1."""
    environ = os.environ if environ is None else environ
    counts = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1]
    quota = cgroup_cpus(root, membership)
    if quota is not None:
        counts.append(math.floor(quota))
    threads = environ.get("OMP_NUM_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        counts.append(int(threads))
    return max(1, min(counts))


def cpu_times(stat: Path = STAT) -> dict[int, tuple[int, int]]:
    """{cpu number: (idle ticks, all ticks)} from /proc/stat's per-CPU lines (idle counts iowait too)."""
    times = {}
    for line in stat.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(f) for f in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def idle_cpus(before: dict, after: dict, allowed) -> float:
    """How many of the `allowed` CPUs were idle between two cpu_times readings (a CPU without ticks in
    between counts as idle)."""
    idle = 0.0
    for cpu in allowed:
        if cpu in before and cpu in after:
            total = after[cpu][1] - before[cpu][1]
            idle += (after[cpu][0] - before[cpu][0]) / total if total > 0 else 1.0
    return idle


def threads_now(limit: int, interval: float = 0.1, stat: Path = STAT) -> int:
    """Threads for a job starting now: the CPUs of this process's affinity that were idle over the last
    `interval` seconds, rounded, between 1 and `limit` (usable_cpus); `limit` where /proc/stat is unreadable."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    try:
        before = cpu_times(stat)
        time.sleep(interval)
        after = cpu_times(stat)
    except (OSError, ValueError):
        return limit
    return max(1, min(limit, math.floor(idle_cpus(before, after, allowed) + 0.5)))
