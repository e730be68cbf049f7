"""The original's ingest path, for `bench/peers/run.sh`: every
`add_training_example` stores its example with one synchronous INSERT into
PostgreSQL on the caller's thread (psycopg2, a connection taken from a pool,
the statement, a commit, the connection given back), as the original's
`_store_training_example` does through its `execute_query` helper.

What it measures: what each call costs the caller (p50, p99 over every call)
and rows per second over all the calls, for the same rows that
`examples/peer_ingest.rs` hands to onthefly (news articles from the stream
file, cycled to `--rows`), into a fresh database on the same server, in the
original's table (its ten columns and a serial id).

Usage: python ingest_original.py STREAM_JSONL --url postgresql://... [--rows N] [--out FILE]
(the URL of a server where it may create a database: the throwaway cluster
of scripts/with_test_postgres.sh)
"""

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import psycopg2.pool

TABLE = """CREATE TABLE training_examples (
    id SERIAL PRIMARY KEY, agent_name TEXT, task_type TEXT, input_text TEXT,
    expected_output TEXT, uncertainty_score DOUBLE PRECISION, importance_score DOUBLE PRECISION,
    source_url TEXT, timestamp TIMESTAMPTZ, user_feedback TEXT, correction_priority INTEGER)"""

INSERT = """INSERT INTO training_examples
    (agent_name, task_type, input_text, expected_output, uncertainty_score,
     importance_score, source_url, timestamp, user_feedback, correction_priority)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""


def execute_query(pool, query, params):
    """The original's helper: a pooled connection, one statement, a commit."""
    conn = pool.getconn()
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
        conn.commit()
    finally:
        pool.putconn(conn)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stream")
    parser.add_argument("--url", required=True, help="server URL ending in a database it may connect to")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--out")
    args = parser.parse_args()

    articles = [json.loads(line) for line in Path(args.stream).read_text().splitlines() if line.strip()]
    rows = args.rows or len(articles)
    server = args.url.rsplit("/", 1)[0]
    database = f"original_ingest_{os.getpid()}"
    admin = psycopg2.connect(args.url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {database}")
    pool = psycopg2.pool.SimpleConnectionPool(1, 4, f"{server}/{database}")
    execute_query(pool, TABLE, None)

    latencies = []
    started = time.perf_counter()
    for i in range(rows):
        a = articles[i % len(articles)]
        t = time.perf_counter()
        execute_query(
            pool,
            INSERT,
            (
                "scout",
                "news_outlet",
                a["text"],
                json.dumps({"outlet": a["outlet"]}),
                0.5,
                0.5,
                a["url"],
                datetime.now(timezone.utc),
                None,
                0,
            ),
        )
        latencies.append(time.perf_counter() - t)
    total_s = time.perf_counter() - started

    conn = pool.getconn()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM training_examples")
        stored = cur.fetchone()[0]
    pool.putconn(conn)
    pool.closeall()
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {database} WITH (FORCE)")
    admin.close()

    latencies.sort()
    at = lambda q: latencies[round((len(latencies) - 1) * q)] * 1e6  # noqa: E731
    result = {
        "peer": "original (Python, psycopg2 " + psycopg2.__version__.split()[0] + ")",
        "path": "one INSERT and commit per example on the caller's thread",
        "rows": rows,
        "rows_stored": stored,
        "rows_per_s": rows / total_s,
        "total_s": total_s,
        "latency_p50_us": at(0.5),
        "latency_p99_us": at(0.99),
        "latency_max_us": at(1.0),
    }
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    print(f"original ingest: {result['rows_per_s']:.0f} rows/s, p50 {result['latency_p50_us']:.0f} us", file=sys.stderr)


if __name__ == "__main__":
    main()
