"""Shared fixtures: each instance gets a fresh data_dir and a small text model,
and the environment's training variables do not leak into the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest

#: A small hashed model (fast to copy and train), no periodic check.
SMALL = {
    "device": "cpu",
    "check_interval_ms": 3_600_000,
    "text_model": {"hash_buckets": 4096, "embedding_dim": 16},
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("TRAINING_", "POSTGRES_")) or name == "DATABASE_URL" or name.endswith("_MODEL_PATH"):
            monkeypatch.delenv(name)


@pytest.fixture
def config(tmp_path: Path) -> Dict[str, Any]:
    """A configuration of one instance in its own folder."""
    return {**SMALL, "data_dir": str(tmp_path / "data")}


def run_python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (the global instance is one per process)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "panicked" not in result.stderr, result.stderr
    return result
