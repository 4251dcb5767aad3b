"""Seeds of the lottery runner: one per replicate, level and cell, whichever process runs it.

A level's seed is derived from its labels alone (never from Python's salted ``hash`` or from
what ran before it in the process), so a cell computes the same levels in the parent, in a
worker process or after a resume.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything"]


def derive_seed(seed: int, *parts: Any) -> int:
    """A stable 63-bit seed from a base seed and labels (independent of Python's hash salt)."""
    text = json.dumps([seed, *parts]).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def seed_everything(seed: int) -> None:
    """Seed torch (every device), Python's ``random`` and numpy's global generator."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
