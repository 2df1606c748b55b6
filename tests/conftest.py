"""Shared by every test folder: the helpers that sit in tests/ (``reliability_cases``) are importable
from the mirrored folders (tests/core/<room>/)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
