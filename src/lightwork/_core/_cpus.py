"""How many CPUs this process may use: what ``max_workers=None`` means everywhere."""

from __future__ import annotations

import math
import os


def available_cpus() -> int:
    """The CPUs this process may actually use: its affinity mask and its cgroup CPU quota.

    ``os.cpu_count()`` counts the machine's CPUs, which over-subscribes a container or a job
    pinned to a few cores.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def _cgroup_cpu_quota(
    root: str = "/sys/fs/cgroup", own_cgroups: str = "/proc/self/cgroup"
) -> float | None:
    """CPUs allowed by the tightest quota on this process's cgroup or an ancestor (cgroup v2
    ``cpu.max``, v1 ``cpu.cfs_quota_us``), or None if unlimited.

    The process's own cgroup comes from ``/proc/self/cgroup``: a systemd ``CPUQuota=`` or a
    container without its own cgroup namespace sets the quota below the root, where reading
    only the root's file (as loky does) misses it. In a container with its own namespace, the
    cgroup is ``/`` and the root's file is the container's.
    """
    v2_path = v1_path = None
    try:
        with open(own_cgroups) as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if not controllers:
                    v2_path = path
                elif "cpu" in controllers.split(","):
                    v1_path = path
    except (OSError, ValueError):
        pass
    quotas = [q for folder in _with_ancestors(root, v2_path or "/") if (q := _v2_quota(folder))]
    if not quotas:
        v1_root = os.path.join(root, "cpu")
        quotas = [
            q for folder in _with_ancestors(v1_root, v1_path or "/") if (q := _v1_quota(folder))
        ]
    return min(quotas, default=None)


def _with_ancestors(root: str, path: str) -> list[str]:
    """``root/a/b``, ``root/a``, ``root`` for ``path`` ``/a/b``."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return [os.path.join(root, *parts[:n]) for n in range(len(parts), -1, -1)]


def _v2_quota(folder: str) -> float | None:
    try:
        with open(os.path.join(folder, "cpu.max")) as f:
            quota, period = f.read().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(folder: str) -> float | None:
    try:
        with open(os.path.join(folder, "cpu.cfs_quota_us")) as f:
            quota_us = int(f.read())
        with open(os.path.join(folder, "cpu.cfs_period_us")) as f:
            period_us = int(f.read())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None
