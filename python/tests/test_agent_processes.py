"""The original system's way: each agent is its own process, started from
one working folder, calling ``initialize_online_training()`` with no
``data_dir``. Three such processes run at once; each keeps its own store
(``onthefly-data/<script>``), and every example of each is stored and
trained, and found again by a restart."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import SMALL

AGENT = """
import json, sys
import onthefly

AGENT = "{agent}"
LABELS = {labels}
onthefly.initialize_online_training(**json.loads(sys.argv[1]))
for i in range(300):
    label = LABELS[i % len(LABELS)]
    onthefly.add_training_example(AGENT, "task", f"{{AGENT}} text {{i}} about {{label}} and {{label}}", label, 0.5)
onthefly.force_update_agent(AGENT)
onthefly.wait_for_idle(300)
onthefly.flush(60)
status = onthefly.get_training_status()["agents"][AGENT]
print(json.dumps({{"received": status["examples_received"], "trained": status["examples_trained"],
                   "held_out": status["examples_held_out"], "buffered": status["buffer_size"],
                   "updates": status["updates_accepted"]}}))
onthefly.shutdown()
"""

AGENTS = {"scout": ["bbc", "cnn"], "analyst": ["positive", "negative"], "fact_checker": [True, False]}


def run_agents(folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH" and not k.startswith("TRAINING_")}
    running = {}
    for agent, labels in AGENTS.items():
        script = folder / f"{agent}.py"
        script.write_text(textwrap.dedent(AGENT.format(agent=agent, labels=repr(labels))))
        running[agent] = subprocess.Popen(
            [sys.executable, script.name, json.dumps(SMALL)],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    reports = {}
    for agent, process in running.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, f"{agent}: exit {process.returncode}\n{out}\n{err}"
        reports[agent] = json.loads(out.strip().splitlines()[-1])
    return reports


def test_three_agent_processes_started_the_original_way_each_store_and_train_everything(tmp_path: Path) -> None:
    reports = run_agents(tmp_path)
    for agent, report in reports.items():
        assert report["received"] == 300, (agent, report)
        # Every example is trained or held out for judging; none waits or is lost.
        assert report["trained"] + report["held_out"] == 300 and report["buffered"] == 0, (agent, report)
        assert report["updates"] >= 1, (agent, report)
        store = tmp_path / "onthefly-data" / agent / "onthefly.sqlite3"
        with sqlite3.connect(store) as db:
            rows = db.execute("SELECT agent_name, count(*) FROM training_examples GROUP BY agent_name").fetchall()
        assert rows == [(agent, 300)], (agent, rows)
    # A restart of all three finds each its own store again: the 300 of the
    # first run are counted (the status counters survive a restart) beside
    # the 300 it adds.
    again = run_agents(tmp_path)
    for agent, report in again.items():
        assert report["received"] == 600, (agent, reports[agent], report)
