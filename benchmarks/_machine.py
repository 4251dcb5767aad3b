"""The machine a benchmark ran on, written next to every figure it produces."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def machine(*extras: str) -> str:
    """CPU model, core count, torch and Python versions (plus ``extras``) and the load average."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    versions = ", ".join([f"torch {torch.__version__}", *extras])
    return (
        f"{cpu}, {os.cpu_count()} cores, {versions}, Python {platform.python_version()}; "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)"
    )
