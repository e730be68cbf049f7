"""The README's Python example runs as shown, and says what it shows: how
many examples were held out to judge updates beside the prediction, and a
fact checker's True/False answered as a bool."""

from __future__ import annotations

from pathlib import Path

from conftest import run_python

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "quickstart.py"
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_quickstart_runs() -> None:
    out = run_python(EXAMPLE.read_text()).stdout.splitlines()
    assert out[0] == "4 trained, 1 held out to judge updates", out
    assert out[1].startswith("Prediction(output='reuters'"), out
    assert out[2] in ("True", "False"), out
    assert len(out) == 3, out


def test_the_readme_shows_the_quickstart_as_it_is() -> None:
    assert EXAMPLE.read_text().strip() in README.read_text()
