"""Bytes per stored example, for docs/operations.md's retention sizes: 200,000
news-like examples (a 242-character text, a label, a source URL) through a
Coordinator into SQLite (its file) or PostgreSQL (the table with its indexes).

    python bench/store_size.py                       # SQLite, in a temporary folder
    python bench/store_size.py postgresql://…/db     # PostgreSQL (an empty database)

Run it with the installed package (``make test`` installs one into
target/python-venv).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile

import onthefly

WORDS = (
    "the government said on tuesday that the new policy would take effect next month "
    "after talks with unions and employers"
).split()
N = 200_000


def fill(**config) -> None:
    small = {"device": "cpu", "text_model": {"hash_buckets": 4096, "embedding_dim": 16}}
    with onthefly.Coordinator(**small, **config, update_threshold=1000) as c:
        for i in range(N):
            text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(40)) + f" {i}"
            c.add_training_example(
                "scout", "news", text, ["bbc", "cnn", "reuters"][i % 3], 0.5, source_url=f"https://example.org/{i}"
            )
        c.flush(300)


def main() -> None:
    folder = tempfile.mkdtemp()
    if len(sys.argv) > 1:
        url = sys.argv[1]
        fill(data_dir=folder, database={"url": url})
        # psql, as no PostgreSQL driver is a dependency of the package.
        query = (
            "SELECT count(*), pg_total_relation_size('training_examples'), "
            "pg_total_relation_size('training_examples') / count(*) FROM training_examples"
        )
        rows, size, per_row = subprocess.run(
            ["psql", url, "-Atc", query], check=True, capture_output=True, text=True
        ).stdout.strip().split("|")
        print(f"PostgreSQL: {rows} rows, {size} bytes with indexes, {per_row} bytes per row")
        return
    fill(data_dir=folder)
    path = os.path.join(folder, "onthefly.sqlite3")
    rows = sqlite3.connect(path).execute("SELECT count(*) FROM training_examples").fetchone()[0]
    size = sum(os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.exists(path + suffix))
    print(f"SQLite: {rows} rows, {size} bytes, {size / rows:.0f} bytes per row")


if __name__ == "__main__":
    main()
