"""Memory figures of this process from /proc/self/status (Linux), shared by the memory benchmarks."""

from __future__ import annotations

from pathlib import Path


def status_kib(field: str) -> int:
    """A /proc/self/status field in KiB, e.g. 'VmRSS' (resident now) or 'VmHWM' (peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")
