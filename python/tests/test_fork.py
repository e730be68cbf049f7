"""A process forked from one that started the training system (Python's
default multiprocessing start method on Linux, gunicorn's workers): its
calls raise ForkedProcessError instead of being accepted and lost, and it
exits cleanly through its exit handlers; the parent goes on unharmed. A
multiprocessing worker that starts its own keeps every example, though
multiprocessing ends it past atexit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SMALL, run_python

FORK = """
import json, os, sys
import onthefly

config = json.loads(sys.argv[1])
onthefly.initialize_online_training(**config, data_dir=sys.argv[2])
onthefly.add_training_example("scout", "news", "a parent's story", "bbc", 0.5)
own = onthefly.Coordinator(**config, data_dir=sys.argv[3])
own.add_training_example("scout", "news", "a parent's story", "bbc", 0.5)

read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read_end)
    said = []
    for call in (
        lambda: onthefly.add_training_example("scout", "news", "a child's story", "cnn", 0.5),
        onthefly.get_training_status,
        lambda: onthefly.predict("scout", "news", "a child's story"),
        lambda: own.add_training_example("scout", "news", "a child's story", "cnn", 0.5),
        own.get_training_status,
        lambda: own.wait_for_idle(1),
    ):
        try:
            call()
            said.append("accepted")
        except onthefly.ForkedProcessError as e:
            said.append(str(e))
    os.write(write_end, json.dumps(said).encode())
    os.close(write_end)
    sys.exit(0)  # a normal exit: the exit handlers run in the child too

os.close(write_end)
data = b""
while True:
    chunk = os.read(read_end, 65536)
    if not chunk:
        break
    data += chunk
_, status = os.waitpid(pid, 0)
print(json.dumps({
    "child_exit": os.waitstatus_to_exitcode(status),
    "said": json.loads(data),
    "parent_pid": os.getpid(),
}))
onthefly.add_training_example("scout", "news", "a parent's second story", "bbc", 0.5)
own.add_training_example("scout", "news", "a parent's second story", "bbc", 0.5)
print(onthefly.get_training_status()["agents"]["scout"]["examples_received"])
print(own.get_training_status()["agents"]["scout"]["examples_received"])
own.close()
onthefly.shutdown()
"""


def test_a_forked_child_is_told_and_exits_cleanly(tmp_path: Path) -> None:
    out = run_python(FORK, json.dumps(SMALL), str(tmp_path / "global"), str(tmp_path / "own"), timeout=120)
    report, global_received, own_received = out.stdout.strip().splitlines()
    report = json.loads(report)
    assert report["child_exit"] == 0, out.stderr
    assert len(report["said"]) == 6
    for said in report["said"]:
        assert said.startswith("this process (") and f"is a fork of process {report['parent_pid']}" in said, said
        assert "spawn" in said
    # The parent lost nothing and learned nothing of the child's.
    assert (global_received, own_received) == ("2", "2")


#: A worker that starts the global instance and a Coordinator of its own
#: (kept, as a worker keeps what its initializer opened), adds examples to
#: both and returns without shutdown(); then the parent counts what the two
#: folders hold. A file, not ``-c``: forkserver imports the worker's module.
#: argv: start method, config, the two data_dirs, how many examples.
WORKER = """
import json, multiprocessing, sys
import onthefly

KEPT = []

def work(config, global_dir, own_dir, n):
    onthefly.initialize_online_training(**config, data_dir=global_dir)
    KEPT.append(onthefly.Coordinator(**config, data_dir=own_dir))
    for i in range(n):
        onthefly.add_training_example("scout", "news", f"story {i}", ["bbc", "cnn"][i % 2], 0.5)
        KEPT[0].add_training_example("scout", "news", f"story {i}", ["bbc", "cnn"][i % 2], 0.5)

if __name__ == "__main__":
    method, config, global_dir, own_dir, n = sys.argv[1], json.loads(sys.argv[2]), *sys.argv[3:5], int(sys.argv[5])
    worker = multiprocessing.get_context(method).Process(target=work, args=(config, global_dir, own_dir, n))
    worker.start()
    worker.join()
    assert worker.exitcode == 0, worker.exitcode
    for folder in (global_dir, own_dir):
        with onthefly.Coordinator(**config, data_dir=folder) as c:
            print(c.export_dataset("scout", "news", folder + "/export.jsonl"))
"""


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_multiprocessing_worker_that_never_shuts_down_keeps_every_example(tmp_path: Path, method: str) -> None:
    """multiprocessing ends such a worker with os._exit, so atexit never runs
    there; the examples still queued for the store were lost (of 300, from
    a dozen to all but one)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    # No update: only the store's queue is left at the end.
    config = {**SMALL, "update_threshold": 100_000, "max_buffer_size": 100_000}
    n = 300
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    args = [method, json.dumps(config), str(tmp_path / "global"), str(tmp_path / "own"), str(n)]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout}\n{out.stderr}"
    assert out.stdout.split() == [str(n), str(n)], f"exported (global, own) of {n} each: {out.stdout.split()}"


#: The parent starts the global instance and forks; the child initialises
#: it again with the same configuration. argv: config, data_dir.
INITIALISE_IN_CHILD = """
import json, os, sys
import onthefly

config = json.loads(sys.argv[1])
onthefly.initialize_online_training(**config, data_dir=sys.argv[2])
pid = os.fork()
if pid == 0:
    try:
        onthefly.initialize_online_training(**config, data_dir=sys.argv[2])
        print("accepted", repr(onthefly._GLOBAL))
    except onthefly.ForkedProcessError as e:
        print("refused", repr(onthefly._GLOBAL), e)
    sys.stdout.flush()
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("parent", os.getpid(), repr(onthefly.initialize_online_training(**config, data_dir=sys.argv[2])))
onthefly.shutdown()
"""


def test_initialising_again_in_a_forked_child_raises(tmp_path: Path) -> None:
    """The library compared the configuration with the inherited instance
    and said yes, though every later call raised ForkedProcessError."""
    out = run_python(INITIALISE_IN_CHILD, json.dumps(SMALL), str(tmp_path / "data"), timeout=120)
    child, parent = out.stdout.strip().splitlines()
    parent_pid = parent.split()[1]
    assert child.startswith("refused"), child
    assert f"is a fork of process {parent_pid}" in child and "open" not in child, child
    assert parent.endswith("<onthefly.Coordinator global, open>"), parent
