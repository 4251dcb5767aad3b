import sys
from pathlib import Path

# tests import the shared pattern models, and examples live at the repository root
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
