import random
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

# tests import the shared pattern models, and examples live at the repository root
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))


@pytest.fixture(autouse=True)
def _seed_each_test(request: pytest.FixtureRequest) -> None:
    """Seed torch, numpy and random from the test's own id before it runs.

    A test's random draws then do not depend on which tests ran before it in the same process,
    which changes with the workers and the order pytest-xdist hands tests out in.
    """
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
