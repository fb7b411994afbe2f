import sys
from pathlib import Path

# `tests.support` is imported by its package name, which needs the repository root on
# sys.path. pytest puts only test directories there (rootdir-based discovery, no __init__.py
# files), and the `pytest` console script does not add the working directory. Harmless once a
# root conftest.py or `pythonpath = ["."]` does the same.
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
