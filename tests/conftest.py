import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Fixtures shared by several test modules.
pytest_plugins = ["tests.planted_layouts", "tests.torch_threads"]
