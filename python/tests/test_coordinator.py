"""A Coordinator of one's own: every method, Python values in and out, threads,
two instances in one process, and a restart that finds its examples."""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path

import pytest

import onthefly
from onthefly import Coordinator, FeedbackOutcome, Prediction

from conftest import SMALL

OUTLETS = ["bbc", "cnn", "reuters"]
WORDS = ["parliament", "election", "markets", "storm", "football", "science"]


def article(i: int, outlet: str) -> str:
    return f"{outlet} report {i} on {WORDS[i % 6]} and {WORDS[(i + len(outlet)) % 6]}"


def test_every_method_with_python_values(config, tmp_path: Path) -> None:
    with Coordinator(**config) as c:
        ids = [c.add_training_example("scout", "news", article(i, OUTLETS[i % 3]), OUTLETS[i % 3], 0.5) for i in range(60)]
        assert len(set(ids)) == 60 and all(isinstance(i, int) and i > 0 for i in ids)
        # A score, token tags and free JSON are Python values too.
        c.add_training_example("analyst", "sentiment", "a fine day", 0.8, 0.2)
        c.add_training_example("newsreader", "entities", "Obama visits Paris", ["B-person", "O", "B-location"], 0.3)
        c.add_training_example("critic", "review", "a long essay", {"verdict": "weak", "points": [1, 2]}, 0.4)

        correction = c.add_user_correction("scout", "news", article(1, "cnn"), "bbc", "cnn")
        assert correction > max(ids)
        assert c.add_prediction_feedback("scout", "news", article(2, "bbc"), "cnn", "bbc", 0.3) is FeedbackOutcome.LEARNED
        outcome = c.add_prediction_feedback("scout", "news", "a story no one has tagged", "cnn", None, 0.2)
        assert outcome is FeedbackOutcome.AWAITING_LABEL and outcome == "awaiting_label"

        c.force_update_agent("scout")
        c.wait_for_idle(300)
        prediction = c.predict("scout", "news", article(7, "reuters"))
        assert isinstance(prediction, Prediction)
        assert prediction.output in OUTLETS and 0.0 <= prediction.confidence <= 1.0 and prediction.model_version >= 1

        items = c.next_for_review("scout", "news", 5)
        # The unsure prediction predict queued (below predict_feedback_threshold) beside the one handed in.
        queued = ["a story no one has tagged"] + ([article(7, "reuters")] if prediction.review_id is not None else [])
        assert sorted(i["input_text"] for i in items) == sorted(queued)
        items = [i for i in items if i["input_text"] == "a story no one has tagged"]
        # The live model's answer (it re-scores the queue), as a plain label.
        assert items[0]["predicted_output"] in OUTLETS
        c.skip(items[0]["review_id"])
        items = [i for i in c.next_for_review("scout", "news") if i["input_text"] == "a story no one has tagged"]
        labelled = c.label(items[0]["review_id"], "reuters")
        assert labelled > correction
        with pytest.raises(onthefly.InvalidArgumentError, match="review"):
            c.label(items[0]["review_id"], "reuters")
        # The label is a correction of priority 2: an update now.
        c.wait_for_idle(300)

        c.flush(60)
        status = c.get_training_status()
        for key in (
            "is_training",
            "buffer_sizes",
            "total_examples",
            "performance_history_size",
            "recent_performance",
            "update_threshold",
            "rollback_threshold",
        ):
            assert key in status, key
        assert status["update_threshold"] == 50 and status["rollback_threshold"] == 0.05
        scout = status["agents"]["scout"]
        # 60 examples, the correction, the learned feedback and the label.
        assert scout["examples_received"] == 63
        assert scout["models"]["news"]["version"] >= 1
        assert status["total_examples"] == sum(status["buffer_sizes"].values())

        exported = c.export_dataset("scout", "news", tmp_path / "scout.jsonl")
        rows = [json.loads(line) for line in (tmp_path / "scout.jsonl").read_text().splitlines()]
        # The 63 received, the unsure prediction itself, now reviewed, and
        # predict's own when it queued one (still waiting for a label).
        assert exported == len(rows) == 64 + (prediction.review_id is not None)
        reviewed = [r for r in rows if r["input"] == "a story no one has tagged"]
        assert sorted((r["target"], r["state"] == "reviewed") for r in reviewed) == [("cnn", True), ("reuters", False)]

        version = scout["models"]["news"]["version"]
        c.rollback_model("scout", "news", version)
        with pytest.raises(onthefly.CheckpointError):
            c.rollback_model("scout", "news", version + 100)

        text = c.metrics()
        assert 'onthefly_examples_received_total{agent="scout"} 63' in text
    # Closed: nothing more is taken.
    with pytest.raises(onthefly.ShutDownError):
        c.add_training_example("scout", "news", "late", "bbc", 0.5)


def test_the_metrics_are_a_prometheus_exposition(config) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    with Coordinator(**config) as c:
        for i in range(10):
            c.add_training_example("scout", "news", article(i, "bbc"), "bbc", 0.5)
        families = {f.name: f for f in parser.text_string_to_metric_families(c.metrics())}
    received = families["onthefly_examples_received"]
    assert [(s.labels, s.value) for s in received.samples if s.name.endswith("_total")] == [({"agent": "scout"}, 10.0)]


def test_bad_input_raises_its_exception_with_the_librarys_message(config) -> None:
    with Coordinator(**config) as c:
        with pytest.raises(onthefly.NullParameterError, match="agent_name"):
            c.add_training_example(None, "news", "text", "bbc", 0.5)  # type: ignore[arg-type]
        with pytest.raises(onthefly.InvalidUtf8Error, match="input_text"):
            c.add_training_example("scout", "news", "bad \udc80 text", "bbc", 0.5)
        with pytest.raises(onthefly.InvalidArgumentError, match="uncertainty_score"):
            c.add_training_example("scout", "news", "text", "bbc", 1.5)
        with pytest.raises(onthefly.InvalidArgumentError, match="uncertainty_score"):
            c.add_training_example("scout", "news", "text", "bbc", float("nan"))
        with pytest.raises(onthefly.InvalidArgumentError, match="priority"):
            c.add_user_correction("scout", "news", "text", "cnn", "bbc", priority=7)
        with pytest.raises(onthefly.InvalidArgumentError, match="priority"):
            c.add_user_correction("scout", "news", "text", "cnn", "bbc", priority=2**40)
        with pytest.raises(onthefly.InvalidArgumentError, match="empty"):
            c.add_training_example("scout", "news", "", "bbc", 0.5)
        with pytest.raises(onthefly.InvalidArgumentError):
            c.add_training_example("scout", "news", "text", {1, 2}, 0.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="input_text"):
            c.add_training_example("scout", "news", 42, "bbc", 0.5)  # type: ignore[arg-type]
        # A score for a task that learns labels.
        c.add_training_example("scout", "news", "text", "bbc", 0.5)
        with pytest.raises(onthefly.InvalidArgumentError, match="label"):
            c.add_training_example("scout", "news", "text", 0.7, 0.5)
        # No model yet: an agent never seen, and a task never trained; one base class.
        with pytest.raises(onthefly.UnknownAgentError, match="nobody"):
            c.predict("nobody", "news", "text")
        with pytest.raises(onthefly.NoModelError, match="no trained model"):
            c.predict("scout", "news", "text")
        with pytest.raises(onthefly.NoModelError):
            c.predict("nobody", "news", "text")
        with pytest.raises(onthefly.IoError) as io:
            c.export_dataset("scout", "news", "/no/such/folder/x.jsonl")
        assert isinstance(io.value, OSError)
        with pytest.raises(onthefly.InvalidArgumentError, match="timeout"):
            c.flush(-1)
        # Every exception is an OnTheFlyError with the code of its class.
        with pytest.raises(onthefly.OnTheFlyError) as any_error:
            c.force_update_agent("nobody")
        assert any_error.value.code == onthefly.UnknownAgentError.code == 8
        assert str(any_error.value) == any_error.value.message != ""


def test_a_bad_configuration_is_refused_in_words(config) -> None:
    with pytest.raises(onthefly.InvalidConfigError, match="update_threshold"):
        Coordinator(**{**config, "update_threshold": 0})
    with pytest.raises(onthefly.InvalidConfigError, match="no_such_field"):
        Coordinator(**config, no_such_field=1)
    with pytest.raises(onthefly.InvalidConfigError, match="JSON"):
        Coordinator(**config, max_buffer_size=object())
    with Coordinator(**config):
        with pytest.raises(onthefly.InvalidConfigError, match="in use"):
            Coordinator(**config)
    # Closed, the folder is free again.
    with Coordinator(**config):
        pass


def test_the_environment_is_the_base_and_keywords_win(config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_MAX_BUFFER_SIZE", "321")
    monkeypatch.setenv("TRAINING_UPDATE_THRESHOLD", "7")
    with Coordinator(**config, update_threshold=9) as c:
        status = c.get_training_status()
        assert status["update_threshold"] == 9
        c.add_training_example("scout", "news", "text", "bbc", 0.5)
        assert c.get_training_status()["agents"]["scout"]["buffer_capacity"] == 321


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_training_data_dir_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value) -> None:
    """As the library reads it: the program's own folder, not the shared one
    of an earlier version (where every later start warned)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINING_DATA_DIR", value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Coordinator(**SMALL):
            pass
    assert not (tmp_path / "onthefly-data" / "onthefly.sqlite3").exists(), "stored in the shared onthefly-data"
    assert (tmp_path / onthefly.default_data_dir() / "onthefly.sqlite3").exists()


def test_threads_add_at_once_and_every_example_is_counted(config) -> None:
    threads, per_thread = 8, 250
    with Coordinator(**config) as c:
        errors = []

        def stream(t: int) -> None:
            try:
                for i in range(per_thread):
                    outlet = OUTLETS[(t + i) % 3]
                    c.add_training_example("scout", "news", f"thread {t} " + article(i, outlet), outlet, 0.5)
                    if i % 50 == 0:
                        c.get_training_status()
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        workers = [threading.Thread(target=stream, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        c.wait_for_idle(300)
        c.flush(60)
        scout = c.get_training_status()["agents"]["scout"]
        assert scout["examples_received"] == threads * per_thread
        assert scout["models"]["news"]["version"] >= 1


def test_two_coordinators_in_one_process_learn_apart(tmp_path: Path, config) -> None:
    other = {**config, "data_dir": str(tmp_path / "other")}
    with Coordinator(**config) as a, Coordinator(**other) as b:
        for i in range(50):
            a.add_training_example("scout", "news", article(i, OUTLETS[i % 3]), OUTLETS[i % 3], 0.5)
        b.add_training_example("critic", "news", "only here", "bbc", 0.5)
        a.force_update_agent("scout")
        a.wait_for_idle(300)
        assert a.predict("scout", "news", "anything").model_version >= 1
        with pytest.raises(onthefly.UnknownAgentError):
            b.predict("scout", "news", "anything")
        assert set(a.get_training_status()["agents"]) == {"scout"}
        assert set(b.get_training_status()["agents"]) == {"critic"}


def test_a_restart_finds_its_examples_and_its_model(config) -> None:
    with Coordinator(**config) as c:
        for i in range(80):
            c.add_training_example("scout", "news", article(i, OUTLETS[i % 3]), OUTLETS[i % 3], 0.5)
        c.wait_for_idle(300)
        before = c.predict("scout", "news", article(3, "bbc"))
        received = c.get_training_status()["agents"]["scout"]["examples_received"]
    with Coordinator(**config) as c:
        scout = c.get_training_status()["agents"]["scout"]
        assert scout["examples_received"] == received == 80
        after = c.predict("scout", "news", article(3, "bbc"))
        assert (after.output, after.model_version) == (before.output, before.model_version)
        assert after.confidence == pytest.approx(before.confidence, abs=1e-6)


def test_an_unclosed_coordinator_is_released_when_collected(config) -> None:
    c = Coordinator(**config)
    c.add_training_example("scout", "news", "text", "bbc", 0.5)
    del c
    import gc

    gc.collect()
    # Freed: its folder can be opened again, and the example was kept.
    with Coordinator(**config) as again:
        assert again.get_training_status()["agents"]["scout"]["examples_received"] == 1
