from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PREFCURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))
BENCHMARK = SHARED / "benchmark" / "rewardbench_reconstructed.jsonl"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The real data of ../shared/data (see its README)."""
    if not BENCHMARK.exists():
        pytest.skip(f"real data not found at {SHARED} (set PREFCURATE_SHARED_DATA)")
    return SHARED


@pytest.fixture(scope="session")
def benchmark_path(shared: Path) -> Path:
    return shared / "benchmark" / "rewardbench_reconstructed.jsonl"
