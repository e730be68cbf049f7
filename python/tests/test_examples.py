"""The README's Python example runs as shown."""

from __future__ import annotations

from pathlib import Path

from conftest import run_python

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"


def test_the_quickstart_runs() -> None:
    out = run_python(EXAMPLE.read_text()).stdout.splitlines()
    assert out[0].startswith("Prediction(output='"), out
    assert out[1] == "{'scout': 0}", out
    assert len(out) == 3 and out[2] != "", out
