"""Where the load bench finds the repository, its own files and the venv's commands."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "bench"
PROBE_HOOK_DIR = BENCH_DIR / "_serverprobe"
ANALYSIS_FILE = BENCH_DIR / "ANALYSIS.md"
VENV_BIN = Path(sys.executable).parent
