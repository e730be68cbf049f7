"""A process forked from one that started the training system (Python's
default multiprocessing start method on Linux, gunicorn's workers): its
calls raise ForkedProcessError instead of being accepted and lost, and it
exits cleanly through its exit handlers; the parent goes on unharmed."""

from __future__ import annotations

import json
from pathlib import Path

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
