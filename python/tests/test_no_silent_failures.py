"""What a Python agent is told instead of being failed silently: a NUL byte
that C would cut a text at, a call on a closed Coordinator, a prediction
queued for review that the agent answered itself."""

from __future__ import annotations

import pytest

import onthefly
from onthefly import Coordinator


def train_two_topics(c: Coordinator) -> None:
    """60 stories of two topics, trained in one update."""
    for i in range(60):
        c.add_training_example("scout", "news", f"story {i} on {['markets', 'storms'][i % 2]}", ["a", "b"][i % 2], 0.5)
    c.force_update_agent("scout")
    c.wait_for_idle(300)


@pytest.mark.parametrize("field", ["agent_name", "task_type", "input_text", "source_url", "user_feedback"])
def test_a_nul_byte_is_refused_not_cut(config, field) -> None:
    arguments = {
        "agent_name": "scout",
        "task_type": "news",
        "input_text": "before and after",
        "expected_output": "bbc",
        "uncertainty_score": 0.5,
        "source_url": "https://example.org/a",
        "user_feedback": "fine",
    }
    arguments[field] = "before\x00after"
    with Coordinator(**config) as c:
        with pytest.raises(ValueError, match=f"{field} must not contain a NUL character") as raised:
            c.add_training_example(**arguments)
        assert isinstance(raised.value, onthefly.InvalidArgumentError)
        assert "scout" not in c.get_training_status()["agents"], "nothing of a refused example is kept"


def test_a_nul_byte_inside_a_label_is_refused(config) -> None:
    with Coordinator(**config) as c:
        with pytest.raises(ValueError, match="NUL"):
            c.add_training_example("scout", "news", "a story", "bb\x00c", 0.5)
        with pytest.raises(ValueError, match="NUL"):
            c.predict("scout", "news", "before\x00after")


def test_every_call_after_close_raises_shut_down(config) -> None:
    with Coordinator(**config) as c:
        train_two_topics(c)
        c.predict("scout", "news", "story on markets")
    assert "closed" in repr(c) and "open" not in repr(c)
    calls = [
        lambda: c.predict("scout", "news", "story on markets"),
        c.get_training_status,
        c.metrics,
        lambda: c.add_training_example("scout", "news", "late", "a", 0.5),
        lambda: c.force_update_agent("scout"),
        lambda: c.next_for_review("scout", "news"),
        lambda: c.flush(1),
        lambda: c.wait_for_idle(1),
        lambda: c.register_task("scout", "other", "classifier"),
    ]
    for call in calls:
        with pytest.raises(onthefly.ShutDownError, match="closed"):
            call()
    c.close()  # closing twice is fine


def test_a_prediction_the_agent_answers_leaves_the_review_queue(config) -> None:
    # Every prediction is unsure enough to be queued for a person.
    with Coordinator(**config, predict_feedback_threshold=1.0, feedback_uncertainty_threshold=0.0) as c:
        train_two_topics(c)
        inputs = [f"new story {i} on markets and storms" for i in range(12)]
        for text in inputs:
            assert c.predict("scout", "news", text).review_id is not None
        # The agent learns the right answer of the first nine itself.
        for text in inputs[:9]:
            c.add_prediction_feedback("scout", "news", text, "a", "b", 0.4)
        waiting = c.next_for_review("scout", "news", 20)
        assert sorted(i["input_text"] for i in waiting) == sorted(inputs[9:])
        review = c.get_training_status()["agents"]["scout"]["reviews"]["news"]
        assert review["answered"] == 9, review


def test_messages_name_the_argument_as_the_caller_wrote_it(config) -> None:
    with Coordinator(**config) as c:
        c.add_training_example("scout", "news", "a story", "bbc", 0.5)
        c.add_training_example("critic", "quality", "an essay", 0.7, 0.5)
        with pytest.raises(ValueError) as raised:
            c.add_training_example("scout", "news", "a story", float("nan"), 0.5)
        assert "expected_output must be a finite number, got nan" in str(raised.value)
        assert "_json" not in str(raised.value)
        with pytest.raises(ValueError) as raised:
            c.add_user_correction("scout", "news", "a story", "bbc", None)  # type: ignore[arg-type]
        said = str(raised.value)
        assert "is a classifier" in said and "correct_output must be" in said and "got null" in said, said
        with pytest.raises(ValueError, match="version must be 0 or more, got -1"):
            c.rollback_model("scout", "news", -1)
        with pytest.raises(ValueError) as raised:
            c.add_training_example("critic", "quality", "an essay", "0.5", 0.5)
        assert 'is a regressor: expected_output must be a number in 0..=1; got "0.5"' in str(raised.value)


def test_numbers_are_numbers_not_strings_or_bools(config) -> None:
    """float() and int() took "0.9", True and 1.9 as 0.9, 1.0 and 1."""
    with Coordinator(**config) as c:
        for score in ("0.9", True):
            with pytest.raises(TypeError, match="uncertainty_score must be a number"):
                c.add_training_example("scout", "news", "a story", "bbc", score)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="importance_score must be a number"):
            c.add_training_example("scout", "news", "a story", "bbc", 0.5, "1")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="confidence_score must be a number"):
            c.add_prediction_feedback("scout", "news", "a story", "bbc", "cnn", False)
        with pytest.raises(TypeError, match="timeout must be a number"):
            c.flush("5")  # type: ignore[arg-type]
        for n in (1.9, "1", True):
            with pytest.raises(TypeError, match="n must be an int"):
                c.next_for_review("scout", "news", n)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="version must fit in 64 bits"):
            c.rollback_model("scout", "news", 2**64)
        assert "scout" not in c.get_training_status()["agents"], "nothing refused is kept"
        # Ints are numbers.
        c.add_training_example("scout", "news", "a story", "bbc", 1, 0)
        c.flush(5)


def test_a_negative_label_priority_is_refused(config) -> None:
    """-1 tells the C ABI "not given": it was taken as priority 2."""
    with Coordinator(**config, predict_feedback_threshold=1.0, feedback_uncertainty_threshold=0.0) as c:
        train_two_topics(c)
        c.predict("scout", "news", "a new story on markets")
        item = c.next_for_review("scout", "news", 1)[0]
        with pytest.raises(onthefly.InvalidArgumentError, match="priority must be in 0..=3, got -1"):
            c.label(item["review_id"], "a", priority=-1)
        with pytest.raises(onthefly.InvalidArgumentError, match="priority must be in 0..=3, got 5"):
            c.label(item["review_id"], "a", priority=5)  # it named correction_priority
        c.label(item["review_id"], "a", priority=0)  # still waiting: nothing was labelled


def test_a_prediction_the_full_review_queue_does_not_keep_is_said_so(config) -> None:
    """It was answered AWAITING_LABEL though it had left the queue at once."""
    with Coordinator(**config, max_pending_review=2, feedback_uncertainty_threshold=0.0) as c:
        outcomes = [
            c.add_prediction_feedback("scout", "news", f"unlabelled story {i}", "a", None, confidence)
            for i, confidence in enumerate([0.1, 0.2, 0.45])
        ]
        assert outcomes == [
            onthefly.FeedbackOutcome.AWAITING_LABEL,
            onthefly.FeedbackOutcome.AWAITING_LABEL,
            onthefly.FeedbackOutcome.NOT_KEPT,
        ]
        assert len(c.next_for_review("scout", "news", 10)) == 2


def test_configuration_values_that_are_not_json_are_named(tmp_path) -> None:
    """A bytes path is a path (it failed with "Circular reference
    detected"); a Decimal is named, not reported as a bad path."""
    import decimal

    with Coordinator(device="cpu", data_dir=str(tmp_path / "data").encode()) as c:
        assert c.get_training_status() is not None
    with pytest.raises(onthefly.InvalidConfigError, match="a Decimal is not a JSON value"):
        Coordinator(device="cpu", data_dir=str(tmp_path / "other"), max_buffer_size=decimal.Decimal(500))


def test_cuda_without_a_cuda_device_raises_instead_of_training_on_the_cpu(tmp_path) -> None:
    """`device="cuda"` fell back to the CPU with only a log line; it raises
    where no CUDA device is visible (`auto` is the choice that falls back)."""
    with Coordinator(device="auto", data_dir=str(tmp_path / "auto")) as c:
        found = c.get_training_status()["device"]
    if found != "cpu":
        with Coordinator(device="cuda", data_dir=str(tmp_path / "gpu")) as c:
            assert c.get_training_status()["device"] == found
        return
    with pytest.raises(onthefly.InvalidConfigError, match='device is invalid: "cuda" asks for a CUDA device'):
        Coordinator(device="cuda", data_dir=str(tmp_path / "gpu"))


def test_keywords_that_make_the_environment_valid_are_taken(tmp_path, monkeypatch) -> None:
    """The environment's values were checked alone before the keywords went
    on top: a buffer of 20 from the environment refused update_threshold=10
    (the default 50 exceeded it), blaming TRAINING_UPDATE_THRESHOLD, which
    nobody had set."""
    monkeypatch.setenv("TRAINING_MAX_BUFFER_SIZE", "20")
    with Coordinator(device="cpu", data_dir=str(tmp_path / "ok"), update_threshold=10) as c:
        status = c.get_training_status()
        assert status["update_threshold"] == 10
    # Without the keyword the combination is refused, naming the field.
    with pytest.raises(onthefly.InvalidConfigError, match="update_threshold") as raised:
        Coordinator(device="cpu", data_dir=str(tmp_path / "bad"))
    assert "TRAINING_UPDATE_THRESHOLD" not in str(raised.value)
    # POSTGRES_* without POSTGRES_HOST: refused, not a local SQLite file.
    monkeypatch.delenv("TRAINING_MAX_BUFFER_SIZE")
    monkeypatch.setenv("POSTGRES_USER", "justnews")
    with pytest.raises(onthefly.InvalidConfigError, match="POSTGRES_HOST"):
        Coordinator(device="cpu", data_dir=str(tmp_path / "sqlite"))
    monkeypatch.delenv("POSTGRES_USER")
    monkeypatch.setenv("TRAINING_MAX_BUFFER_SIZE", "20")
    # A malformed value still names its variable.
    monkeypatch.setenv("TRAINING_MAX_BUFFER_SIZE", "many")
    with pytest.raises(onthefly.InvalidConfigError, match="TRAINING_MAX_BUFFER_SIZE"):
        Coordinator(device="cpu", data_dir=str(tmp_path / "worse"))


def test_a_list_of_tag_ids_is_refused_not_kept_for_good(tmp_path) -> None:
    """Tag ids as a dataset stores them (``[0, 3, 4]``) made a new task a
    kept one for good: accepted, never trained, predict said no model."""
    with Coordinator(device="cpu", data_dir=str(tmp_path / "d")) as c:
        with pytest.raises(onthefly.InvalidArgumentError, match="neither tags"):
            c.add_training_example("analyst", "ner", "Obama visited Paris", [0, 3, 4], 0.5)
        c.add_training_example("analyst", "ner", "Obama visited Paris", ["B-PER", "O", "B-LOC"], 0.5)
        # Declared kept, a task keeps any list.
        c.register_task("synthesizer", "ids", "kept")
        c.add_training_example("synthesizer", "ids", "Obama visited Paris", [0, 3, 4], 0.5)
        assert c.get_training_status()["agents"]["synthesizer"]["examples_kept"] == 1
