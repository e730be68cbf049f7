"""The original's module-level functions, with its names, parameters and
defaults, over the global instance (one per process, so each test runs in a
fresh interpreter)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import SMALL, run_python


def test_the_originals_functions_work_as_documented(tmp_path: Path) -> None:
    config = json.dumps({**SMALL, "data_dir": str(tmp_path / "data")})
    out = run_python(
        """
        import json, sys
        import onthefly
        from onthefly import (initialize_online_training, add_training_example, add_prediction_feedback,
                              add_user_correction, get_training_status, force_update_agent)

        config = json.loads(sys.argv[1])
        try:
            get_training_status()
            raise SystemExit("no error before initialisation")
        except onthefly.NotInitializedError as e:
            assert "initialize" in str(e), e

        coordinator = initialize_online_training(update_threshold=40, **config)
        assert initialize_online_training(update_threshold=40, **config) is coordinator
        try:
            initialize_online_training(update_threshold=41, **config)
            raise SystemExit("a second configuration was accepted")
        except onthefly.AlreadyInitializedError:
            pass

        outlets = ["bbc", "cnn", "reuters"]
        for i in range(39):
            # The original's positional order; importance, source, feedback, priority defaulted.
            add_training_example("scout", "news", f"{outlets[i % 3]} story {i}", outlets[i % 3], 0.5)
        status = get_training_status()
        scout = status["agents"]["scout"]
        # A fifth is held out to judge updates (the default held_out_fraction).
        assert status["buffer_sizes"] == {"scout": 39 - scout["examples_held_out"]}, status
        assert scout["examples_received"] == 39 and status["total_examples"] == status["buffer_sizes"]["scout"]
        assert status["update_threshold"] == 40 and status["performance_history_size"] == 0

        # Keywords as the original's callers wrote them.
        add_prediction_feedback(agent_name="scout", task_type="news", input_text="cnn story x",
                                predicted_output="bbc", actual_output="cnn", confidence_score=0.3)
        # priority defaults to 2: an update at once.
        add_user_correction(agent_name="scout", task_type="news", input_text="bbc story 0",
                            incorrect_output="cnn", correct_output="bbc")
        onthefly.wait_for_idle(300)
        force_update_agent("scout")
        onthefly.wait_for_idle(300)
        status = onthefly.get_online_training_status()
        scout = status["agents"]["scout"]
        print("RECEIVED", scout["examples_received"])
        print("HISTORY", status["performance_history_size"])
        print("PREDICTION", onthefly.predict("scout", "news", "reuters story 2").output)
        print("METRICS", "onthefly_updates_total" in onthefly.metrics())
        onthefly.shutdown()
        try:
            add_training_example("scout", "news", "late", "bbc", 0.5)
            raise SystemExit("accepted after shutdown")
        except onthefly.ShutDownError:
            pass
        """,
        config,
    )
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["RECEIVED"] == "41"
    assert int(lines["HISTORY"]) >= 1
    assert lines["PREDICTION"] in {"bbc", "cnn", "reuters"}
    assert lines["METRICS"] == "True"


def test_initialising_without_update_threshold_keeps_the_environments(tmp_path: Path, monkeypatch) -> None:
    """The keyword's default of 50 went to the library on top of
    TRAINING_UPDATE_THRESHOLD, as if given."""
    monkeypatch.setenv("TRAINING_UPDATE_THRESHOLD", "7")
    out = run_python(
        """
        import json, sys
        import onthefly
        onthefly.initialize_online_training(**json.loads(sys.argv[1]))
        print(onthefly.get_training_status()["update_threshold"])
        """,
        json.dumps({**SMALL, "data_dir": str(tmp_path / "data")}),
    )
    assert out.stdout.strip() == "7", "TRAINING_UPDATE_THRESHOLD=7 ignored"


#: Streams into the global instance and an open Coordinator from 4 threads,
#: forces an update and ends with neither shut down. argv: config, the two
#: data_dirs, and "c-handler-only" to unregister the package's Python hook.
EXIT_DURING_UPDATE = """
    import atexit, json, sys, threading
    import onthefly
    if sys.argv[4:] == ["c-handler-only"]:
        atexit.unregister(onthefly._shut_down_at_exit)
    config = json.loads(sys.argv[1])
    onthefly.initialize_online_training(**{**config, "data_dir": sys.argv[2]})
    own = onthefly.Coordinator(**{**config, "data_dir": sys.argv[3]})

    def stream(t):
        for i in range(1500):
            onthefly.add_training_example("scout", "news", f"story {t} {i}", ["bbc", "cnn"][i % 2], 0.5)
            own.add_training_example("critic", "news", f"story {t} {i}", ["bbc", "cnn"][i % 2], 0.5)

    threads = [threading.Thread(target=stream, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    onthefly.force_update_agent("scout")
    # No shutdown, no close: the script just ends.
"""


def test_a_script_that_never_shuts_down_keeps_every_example(tmp_path: Path) -> None:
    """The interpreter exits with the global instance and an open Coordinator
    still running: both are shut down on the way out, nothing is lost."""
    data, other = tmp_path / "global", tmp_path / "own"
    for _ in range(3):
        run_python(EXIT_DURING_UPDATE, json.dumps(SMALL), str(data), str(other))
    count = """
        import json, sys
        import onthefly
        with onthefly.Coordinator(**{**json.loads(sys.argv[1]), "data_dir": sys.argv[2]}) as c:
            agents = c.get_training_status()["agents"]
            print(sum(a["examples_received"] for a in agents.values()))
    """
    for folder in (data, other):
        assert run_python(count, json.dumps(SMALL), str(folder)).stdout.strip() == str(3 * 4 * 1500)


def test_the_librarys_own_exit_handler_alone_exits_cleanly(tmp_path: Path) -> None:
    """Without the package's Python hook, as a C program or a raw ctypes
    script has it: the library's C-level handler must still run before
    libtorch destroys the kernels a running update uses (it is registered
    again after the first updates). Before that, 6 of 30 such runs ended in
    a segmentation fault."""
    for run in range(15):
        run_python(
            EXIT_DURING_UPDATE,
            json.dumps(SMALL),
            str(tmp_path / f"global-{run}"),
            str(tmp_path / f"own-{run}"),
            "c-handler-only",
        )
