"""Keeps the models of a multi-agent news-analysis system learning while they run.

The original JustNews online-training API, over this library's Rust core::

    import onthefly

    onthefly.initialize_online_training(update_threshold=50)
    onthefly.add_training_example("scout", "news", "Markets rally as rates hold", "reuters", 0.4)
    onthefly.add_user_correction("scout", "news", "Storm batters the coast", "cnn", "bbc")
    print(onthefly.get_training_status()["buffer_sizes"])

and beyond it, instances of one's own (``with onthefly.Coordinator(data_dir=...)
as c: ...``), predictions, the review queue, exports and Prometheus metrics.

Values go in and come out as Python values: a label is a ``str``, a score a
``float``, token tags a ``list[str]``, anything else a ``dict`` or ``list``.
Every failure raises a subclass of :class:`OnTheFlyError` (see
:mod:`onthefly.errors`) carrying the library's message.

The configuration of an instance is the environment's (``TRAINING_*``,
``DATABASE_URL`` or ``POSTGRES_*``, ``<AGENT>_MODEL_PATH``, as the original
read it) with the keyword arguments on top; the names are the library's
configuration fields (the repository's docs/configuration.md has the table,
and :class:`Config` lists them), for example
``max_buffer_size``, ``data_dir``, ``database={"url": ...}``.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import enum
import json
import math
import os
import re
import sys
import threading
import warnings
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, TypedDict, Union

if TYPE_CHECKING:  # annotations are not evaluated at run time (PEP 563)
    from typing_extensions import Unpack

from . import _native
from ._native import lib
from .errors import (
    AlreadyInitializedError,
    CheckpointError,
    ForkedProcessError,
    InternalError,
    InvalidArgumentError,
    InvalidConfigError,
    InvalidUtf8Error,
    IoError,
    ModelError,
    NoModelError,
    NotInitializedError,
    NullParameterError,
    OnTheFlyError,
    PanicError,
    ShutDownError,
    StoreError,
    TimeoutError,
    UnknownAgentError,
    error_for,
)

__all__ = [
    "Coordinator",
    "Config",
    "Prediction",
    "FeedbackOutcome",
    "initialize_online_training",
    "register_task",
    "list_checkpoints",
    "default_data_dir",
    "flush_async",
    "wait_for_idle_async",
    "shutdown_async",
    "add_training_example",
    "add_prediction_feedback",
    "add_user_correction",
    "get_training_status",
    "get_online_training_status",
    "force_update_agent",
    "predict",
    "metrics",
    "flush",
    "wait_for_idle",
    "shutdown",
    "export_dataset",
    "rollback_model",
    "next_for_review",
    "label",
    "skip",
    "adopt_original_database",
    "library_version",
    "OnTheFlyError",
    "NullParameterError",
    "InvalidUtf8Error",
    "ForkedProcessError",
    "InvalidArgumentError",
    "InvalidConfigError",
    "NotInitializedError",
    "AlreadyInitializedError",
    "ShutDownError",
    "UnknownAgentError",
    "NoModelError",
    "StoreError",
    "ModelError",
    "CheckpointError",
    "TimeoutError",
    "InternalError",
    "PanicError",
    "IoError",
]

__version__ = "0.1.0"

#: A target or an output: a label (``str``), a score (``float``), token tags
#: (``list[str]``) or free JSON (``dict``, ``list``, ...).
Value = Union[str, float, int, List[str], Dict[str, Any], List[Any], bool, None]

_INT32 = range(-(2**31), 2**31)
_U32_MS = 2**32 - 1


class FeedbackOutcome(str, enum.Enum):
    """What became of a prediction handed in with ``add_prediction_feedback``."""

    #: The answer was known and the prediction worth learning: it is a training example now.
    LEARNED = "learned"
    #: The answer is not known and the prediction was uncertain: it waits for a label.
    AWAITING_LABEL = "awaiting_label"
    #: Confident enough and not wrong: nothing to learn.
    NOT_NEEDED = "not_needed"
    #: Uncertain and without an answer, but the review queue is full of more
    #: useful predictions: not kept (not an example, never trained).
    NOT_KEPT = "not_kept"


_OUTCOMES = [
    FeedbackOutcome.LEARNED,
    FeedbackOutcome.AWAITING_LABEL,
    FeedbackOutcome.NOT_NEEDED,
    FeedbackOutcome.NOT_KEPT,
]


@dataclass(frozen=True)
class Prediction:
    """A live model's answer."""

    #: The output: a label, a score, tags or free JSON.
    output: Any
    #: The model's confidence, 0..1.
    confidence: float
    #: The version of the model that answered.
    model_version: int
    #: The id of the review item the prediction was queued as, when the
    #: model was unsure (below ``predict_feedback_threshold``): a person can
    #: :meth:`Coordinator.label` it. Answering the same input yourself
    #: (``add_training_example``, or feedback with the answer) takes it out
    #: of the queue.
    review_id: Optional[int] = None


class Config(TypedDict, total=False):
    """The configuration's keys, for completion and type checking: pass them
    as keyword arguments to :class:`Coordinator` or
    :func:`initialize_online_training` (``Coordinator(update_threshold=20)``).
    Every key is optional; the environment (``TRAINING_*``, ``DATABASE_URL``)
    and then the defaults fill the rest. docs/configuration.md explains each.
    """

    update_threshold: int
    max_buffer_size: int
    performance_window: int
    rollback_threshold: float
    check_interval_ms: int
    stale_after_ms: int
    acceptance: Dict[str, Any]
    replay: Dict[str, Any]
    immediate_update_priority: int
    held_out_fraction: float
    max_examples_per_update: int
    max_concurrent_updates: int
    max_input_bytes: int
    max_name_bytes: int
    feedback_uncertainty_threshold: float
    feedback_importance_threshold: float
    max_pending_review: int
    predict_feedback_threshold: float
    query_strategy: str
    review_diversity: float
    device: str
    database: Optional[Dict[str, Any]]
    store: Dict[str, Any]
    model_paths: Dict[str, str]
    data_dir: Union[str, os.PathLike]
    checkpoints_kept: int
    checkpoint_full_every: int
    text_model: Dict[str, Any]
    ewc: Dict[str, Any]
    ewc_per_task: Dict[str, Any]
    torchscript: Dict[str, Any]
    model_kinds: Dict[str, str]
    minilm_dir: Optional[str]
    cluster: Optional[Dict[str, Any]]


#: What :meth:`Coordinator.register_task` accepts as ``kind``.
_TASK_KINDS = ("classifier", "regressor", "tagger", "kept")


def library_version() -> str:
    """The version of the Rust library inside the package (the same as the
    package's own when it was built from this checkout).

    >>> onthefly.library_version()
    '0.1.0'
    """
    return lib.otf_version().decode()


def _check(code: int) -> None:
    if code != 0:
        raise error_for(code, _native.last_error())


def _text(value: Optional[str], name: str) -> Optional[bytes]:
    """A string argument as UTF-8 (None stays None: the library refuses it where it is required)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if "\x00" in value:
        # A C string ends at its first NUL: the rest would be cut off unseen.
        raise InvalidArgumentError(
            f"{name} must not contain a NUL character (\\x00, at position {value.index(chr(0))})"
        )
    # A lone surrogate goes through, so the library names what is wrong with it.
    return value.encode("utf-8", "surrogatepass")


def _json(value: Value, name: str) -> bytes:
    """A target or an output as the JSON text the C ABI takes."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {value}")
    # The library reads a JSON integer beyond 64 bits as a float: a class id
    # that large became a score, refused with a message about 0..1.
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        raise InvalidArgumentError(f"{name}: an integer class id must fit in 64 bits, got {value}")
    try:
        return json.dumps(value, allow_nan=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError) as e:
        raise InvalidArgumentError(
            f"{name} must be a str, bool, int, finite float, list of str or other JSON value: {e}"
        ) from None


def _id(value: int, name: str) -> int:
    """A version or an id: an int in 0..2**64 (C's uint64_t)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise InvalidArgumentError(f"{name} must be 0 or more, got {value}")
    if value >= 2**64:
        raise InvalidArgumentError(f"{name} must fit in 64 bits (below 2**64), got {value}")
    return value


def _number(value: float, name: str) -> float:
    """A score or a number of seconds as a float: an int, a float or a
    scalar of NumPy or torch (what converts itself, ``__float__``). A ``str``
    is refused rather than parsed, a ``bool`` rather than read as 0 or 1."""
    if isinstance(value, bool) or not hasattr(type(value), "__float__"):
        raise TypeError(f"{name} must be a number (an int or a float), got {type(value).__name__}")
    return float(value)


def _int32(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value not in _INT32:
        raise InvalidArgumentError(f"{name} must be in 0..=3, got {value}")
    return value


def _milliseconds(seconds: float, name: str) -> int:
    ms = _number(seconds, name) * 1000.0
    if not 0.0 <= ms <= _U32_MS:
        raise InvalidArgumentError(f"{name} must be between 0 and {_U32_MS / 1000:.0f} seconds, got {seconds}")
    return int(ms)


#: The parent folder of the default ``data_dir`` of each process.
DEFAULT_DATA_ROOT = "onthefly-data"


def _process_name() -> str:
    """The name of this process's program, as a folder name: the script's
    stem (``scout`` for ``python agents/scout.py`` or ``python -m
    agents.scout``), its package for a ``__main__``, ``python`` otherwise."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    name = ""
    if script is not None:
        name = script.parent.name if script.stem == "__main__" else script.stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._")
    return name or "python"


def default_data_dir() -> Path:
    """The ``data_dir`` used when none is configured: ``onthefly-data/<program>``
    in the working folder, so that agents started as their own processes
    from one folder (``scout.py``, ``analyst.py``, ...) each keep their own
    store and find it again after a restart. A folder of an earlier version
    (``onthefly-data`` holding a store itself) is kept, with a warning.

    >>> onthefly.default_data_dir()  # in agents/scout.py
    PosixPath('onthefly-data/scout')
    """
    root = Path(DEFAULT_DATA_ROOT)
    if (root / "onthefly.sqlite3").exists():
        warnings.warn(
            f"using {root}, written by an earlier version of onthefly, as this process's data_dir: "
            f"only one process can use it at a time; move it to {root / _process_name()} so that each "
            "agent process has its own folder, or set data_dir",
            stacklevel=3,
        )
        return root
    return root / _process_name()


def _config_json(config: Dict[str, Any]) -> bytes:
    """The environment's configuration with ``config`` on top, checked as a
    whole by the library, as JSON; the per-process default ``data_dir``
    where neither sets one."""
    # Empty (or blank) counts as unset, as the library reads it.
    if "data_dir" not in config and not os.environ.get("TRAINING_DATA_DIR", "").strip():
        config = {**config, "data_dir": str(default_data_dir())}
    try:
        settings = json.dumps(config, default=_config_value).encode("utf-8")
    except TypeError as e:
        raise InvalidConfigError(f"the configuration must be JSON-serialisable: {e}") from None
    raw = ctypes.c_void_p()
    _check(lib.otf_config_from_environment_with(settings, ctypes.byref(raw)))
    return _native.take_text(raw).encode("utf-8")


def _config_value(value: Any) -> str:
    """A path (``str``, ``bytes`` or ``os.PathLike``) in the configuration as
    text; anything else that is not JSON is named. (``os.fspath`` alone gave
    ``bytes`` back, and json answered "Circular reference detected".)"""
    if isinstance(value, (bytes, os.PathLike)):
        return os.fsdecode(os.fspath(value))
    raise TypeError(f"a {type(value).__name__} is not a JSON value (give str, int, float, bool, None, lists, dicts or paths)")


class Coordinator:
    """A training system: the per-agent buffers, the background updates, the store.

    ``Coordinator(**config)`` opens one of its own (its own ``data_dir``, which
    no other running instance may use); ``close()`` (or leaving a ``with``
    block) stops it: a running update finishes, every accepted example is
    written to the store. The global instance of the original's functions is
    a ``Coordinator`` too (``initialize_online_training`` returns it).
    Methods may be called from many threads at once.
    """

    def __init__(self, **config: Unpack[Config]) -> None:
        handle = ctypes.c_void_p()
        _check(lib.otf_coordinator_new(_config_json(config), ctypes.byref(handle)))
        self._handle: Optional[ctypes.c_void_p] = handle
        self._is_global = False
        self._closed = False
        self._started_in: Optional[int] = os.getpid()
        _OPEN.add(self)
        _shut_down_when_a_worker_ends()

    @classmethod
    def _global_instance(cls) -> "Coordinator":
        instance = cls.__new__(cls)
        instance._handle = None
        instance._is_global = True
        instance._closed = False
        instance._started_in = None  # until initialize_online_training
        return instance

    def _call(self, operation: str, *args: Any) -> None:
        if self._closed or (not self._is_global and self._handle is None):
            which = "the global instance has been shut down" if self._is_global else "the coordinator has been closed"
            raise ShutDownError(f"{which}: no call is answered after close() or shutdown()")
        if self._is_global:
            _check(getattr(lib, f"otf_{operation}")(*args))
        else:
            _check(getattr(lib, f"otf_coordinator_{operation}")(self._handle, *args))

    def _text_call(self, operation: str, *args: Any) -> str:
        raw = ctypes.c_void_p()
        self._call(operation, *args, ctypes.byref(raw))
        return _native.take_text(raw)

    # -- The original's API ------------------------------------------------

    def add_training_example(
        self,
        agent_name: str,
        task_type: str,
        input_text: str,
        expected_output: Value,
        uncertainty_score: float,
        importance_score: float = 0.5,
        source_url: str = "",
        user_feedback: Optional[str] = None,
        correction_priority: int = 0,
    ) -> int:
        """Adds a labelled example to the agent's buffer; returns its id.

        Args:
            agent_name: the agent whose model learns it (``"scout"``).
            task_type: the task within the agent (``"news_classification"``).
            input_text: the model's input.
            expected_output: the correct output. A ``str``, ``bool`` or
                ``int`` is a class label (answered by :meth:`predict` in the
                same form), a ``float`` in 0..1 a score, a list of ``str``
                one tag per word of the input; anything else JSON is kept for
                :meth:`export_dataset`, not trained. A task's first target
                (or :meth:`register_task`) fixes what it learns.
            uncertainty_score: how unsure the agent was, 0..1.
            importance_score: how much the example matters, 0..1.
            source_url: where the input came from.
            user_feedback: a person's comment, if any.
            correction_priority: 0..3; 2 and 3 start an update at once.

        Returns:
            The example's id (increasing).

        Raises:
            InvalidArgumentError: (a ``ValueError``) a value out of range,
                empty, with a NUL character, or one the task cannot learn
                (the message says what to pass instead).
            ShutDownError: after :meth:`close`.
            ForkedProcessError: in a process forked from the one that
                started the instance.

        >>> coordinator.add_training_example("scout", "news", "Storm hits the coast", "bbc", 0.3)
        17
        """
        out = ctypes.c_uint64()
        self._call(
            "add_training_example",
            _text(agent_name, "agent_name"),
            _text(task_type, "task_type"),
            _text(input_text, "input_text"),
            _json(expected_output, "expected_output"),
            _number(uncertainty_score, "uncertainty_score"),
            _number(importance_score, "importance_score"),
            _int32(correction_priority, "correction_priority"),
            _text(source_url, "source_url"),
            _text(user_feedback, "user_feedback"),
            ctypes.byref(out),
        )
        return out.value

    def add_prediction_feedback(
        self,
        agent_name: str,
        task_type: str,
        input_text: str,
        predicted_output: Value,
        actual_output: Value,
        confidence_score: float,
        source_url: str = "",
    ) -> FeedbackOutcome:
        """Hands in a prediction an agent made.

        A wrong or unsure prediction with its answer becomes a training
        example; an unsure one without an answer waits for a person's label
        (:meth:`next_for_review`); a confident right one is not needed.

        Args:
            agent_name, task_type, input_text: as for :meth:`add_training_example`.
            predicted_output: what the agent answered.
            actual_output: the correct answer, or ``None`` when not known.
            confidence_score: the agent's confidence, 0..1.
            source_url: where the input came from.

        Returns:
            A :class:`FeedbackOutcome`: ``LEARNED``, ``AWAITING_LABEL``,
            ``NOT_NEEDED``, or ``NOT_KEPT`` (the review queue is full of
            more useful predictions).

        Raises:
            InvalidArgumentError: as for :meth:`add_training_example`.

        >>> coordinator.add_prediction_feedback("scout", "news", "Storm hits", "cnn", "bbc", 0.4)
        <FeedbackOutcome.LEARNED: 'learned'>
        """
        out = ctypes.c_uint32()
        self._call(
            "add_prediction_feedback",
            _text(agent_name, "agent_name"),
            _text(task_type, "task_type"),
            _text(input_text, "input_text"),
            _json(predicted_output, "predicted_output"),
            _number(confidence_score, "confidence_score"),
            None if actual_output is None else _json(actual_output, "actual_output"),
            _text(source_url, "source_url"),
            ctypes.byref(out),
        )
        return _OUTCOMES[out.value]

    def add_user_correction(
        self,
        agent_name: str,
        task_type: str,
        input_text: str,
        incorrect_output: Value,
        correct_output: Value,
        priority: int = 2,
        user_feedback: Optional[str] = None,
    ) -> int:
        """Adds a person's correction; returns the example's id.

        A correction is never held out for judging, and priority 2 (the
        default) or 3 starts an update at once.

        Args:
            agent_name, task_type, input_text: as for :meth:`add_training_example`.
            incorrect_output: what the agent answered.
            correct_output: the right answer (learned).
            priority: 0..3.
            user_feedback: the person's comment.

        Raises:
            InvalidArgumentError: as for :meth:`add_training_example`.

        >>> coordinator.add_user_correction("scout", "news", "Storm hits", "cnn", "bbc")
        18
        """
        out = ctypes.c_uint64()
        self._call(
            "add_user_correction",
            _text(agent_name, "agent_name"),
            _text(task_type, "task_type"),
            _text(input_text, "input_text"),
            _json(incorrect_output, "incorrect_output"),
            _json(correct_output, "correct_output"),
            _int32(priority, "priority"),
            _text(user_feedback, "user_feedback"),
            ctypes.byref(out),
        )
        return out.value

    def get_training_status(self) -> Dict[str, Any]:
        """The training system's state, as a dict.

        The original's keys (``is_training``, ``buffer_sizes``,
        ``total_examples``, ``performance_history_size``,
        ``recent_performance``, ``update_threshold``, ``rollback_threshold``)
        and this library's: ``agents`` (per agent: ``examples_received``,
        ``examples_trained``, ``examples_held_out``, ``updates_accepted``,
        ``updates_rolled_back``, ``last_error``, ``models``, ``reviews`` ...),
        ``store`` and ``cluster``.

        >>> coordinator.get_training_status()["agents"]["scout"]["examples_trained"]
        240
        """
        return json.loads(self._text_call("get_training_status"))

    def force_update_agent(self, agent_name: str) -> None:
        """Queues an update of the agent now, whatever its buffer holds, and
        returns without waiting for it (:meth:`wait_for_idle` waits).

        Raises:
            UnknownAgentError: no example was ever added for the agent.

        >>> coordinator.force_update_agent("scout")
        """
        self._call("force_update_agent", _text(agent_name, "agent_name"))

    # -- Beyond the original -------------------------------------------------

    def register_task(self, agent_name: str, task_type: str, kind: str) -> None:
        """Declares what a task learns, before or after its first example.

        ``kind`` is ``"classifier"`` (labels: strings, ``True``/``False`` or
        integer class ids, answered in the same form), ``"regressor"``
        (scores in 0..1; the integers 0 and 1 are scores too), ``"tagger"``
        (a list of tags, one per word of the input) or ``"kept"`` (any JSON
        value, stored for export, not trained). Without a declaration the
        task's first target fixes what it learns: a bool or an int is a
        label, a float a score.

        Declaring a task again with the same kind does nothing; the
        declaration is stored and holds after a restart.

        Raises :class:`ValueError` for an unknown ``kind`` and
        :class:`InvalidArgumentError` when the task already learns another
        kind of target.

        >>> coordinator.register_task("critic", "quality", kind="regressor")
        >>> coordinator.add_training_example("critic", "quality", "a fine essay", 1, 0.5)
        """
        if kind not in _TASK_KINDS:
            raise ValueError(f"kind must be classifier, regressor, tagger or kept; got {kind!r}")
        self._call(
            "register_task", _text(agent_name, "agent_name"), _text(task_type, "task_type"), _text(kind, "kind")
        )

    def predict(self, agent_name: str, task_type: str, input_text: str) -> Prediction:
        """The live model's answer for ``input_text``.

        A label comes back in the form the task's labels were given (a
        ``bool`` task answers ``True``/``False``). An answer less confident
        than ``predict_feedback_threshold`` is also queued for a person
        (its ``review_id``); answering that input yourself takes it out.

        Returns:
            A :class:`Prediction` (``output``, ``confidence``,
            ``model_version``, ``review_id``).

        Raises:
            UnknownAgentError: no example was ever added for the agent.
            NoModelError: the task has had no accepted update yet.

        >>> coordinator.predict("scout", "news", "Storm hits the coast").output
        'bbc'
        """
        raw = json.loads(
            self._text_call(
                "predict", _text(agent_name, "agent_name"), _text(task_type, "task_type"), _text(input_text, "input_text")
            )
        )
        return Prediction(raw["output"], raw["confidence"], raw["model_version"], raw.get("review_id"))

    def metrics(self) -> str:
        """The training system in Prometheus' text exposition format (serve it
        on ``/metrics``).

        >>> print(coordinator.metrics().splitlines()[0])
        # HELP onthefly_examples_received_total ...
        """
        return self._text_call("metrics_text")

    def flush(self, timeout: float = 60.0) -> None:
        """Returns once every example accepted before the call is stored.

        Raises:
            TimeoutError: after ``timeout`` seconds (the rows are still queued).

        >>> coordinator.flush(30)
        """
        self._call("flush", _milliseconds(timeout, "timeout"))

    def wait_for_idle(self, timeout: float = 60.0) -> None:
        """Returns once no update is queued or running and every example a
        full buffer evicted is taken back from the store and trained: a fast
        caller's whole stream is trained when it returns. Every update done
        by then serves. :meth:`wait_for_idle_async` under asyncio.

        Raises:
            TimeoutError: after ``timeout`` seconds.

        >>> coordinator.force_update_agent("scout")
        >>> coordinator.wait_for_idle(300)
        """
        self._call("wait_for_idle", _milliseconds(timeout, "timeout"))

    # -- For asyncio: the calls that wait, awaited on a worker thread ------

    async def flush_async(self, timeout: float = 60.0) -> None:
        """:meth:`flush`, awaitable: the event loop runs on while it waits.

        >>> await coordinator.flush_async(30)
        """
        await asyncio.to_thread(self.flush, timeout)

    async def wait_for_idle_async(self, timeout: float = 60.0) -> None:
        """:meth:`wait_for_idle`, awaitable: the event loop runs on while an
        update finishes.

        >>> coordinator.force_update_agent("scout")
        >>> await coordinator.wait_for_idle_async(300)
        """
        await asyncio.to_thread(self.wait_for_idle, timeout)

    async def close_async(self) -> None:
        """:meth:`close`, awaitable: a running update finishes first, which
        may take a while; the event loop runs on meanwhile.

        >>> await coordinator.close_async()
        """
        await asyncio.to_thread(self.close)

    shutdown_async = close_async

    def list_checkpoints(self, agent_name: str, task_type: str) -> List[Dict[str, Any]]:
        """The checkpoint versions of (agent, task) kept on disk, oldest
        first: dicts with ``version``, ``serving``, ``metric``, ``before``,
        ``after`` (the held-out metric of the update that made it) and
        ``created_ms``; the versions :meth:`rollback_model` restores.

        Raises:
            UnknownAgentError: no example was ever added for the agent.

        >>> coordinator.list_checkpoints("scout", "news")[-1]
        {'version': 6, 'serving': True, 'metric': 'accuracy', 'before': 0.61, 'after': 0.64, 'created_ms': 1765...}
        """
        return json.loads(
            self._text_call("list_checkpoints", _text(agent_name, "agent_name"), _text(task_type, "task_type"))
        )

    def rollback_model(self, agent_name: str, task_type: str, version: int) -> None:
        """Serves a kept checkpoint version of (agent, task) again, until a
        newer one is accepted (also after a restart).

        Args:
            version: one of :meth:`list_checkpoints`'s versions.

        Raises:
            CheckpointError: no such version is kept, or it cannot be read.
            NoModelError: the task has no model.

        >>> [c["version"] for c in coordinator.list_checkpoints("scout", "news")]
        [4, 5, 6]
        >>> coordinator.rollback_model("scout", "news", 5)
        """
        self._call(
            "rollback_model", _text(agent_name, "agent_name"), _text(task_type, "task_type"), _id(version, "version")
        )

    def export_dataset(self, agent_name: str, task_type: str, path: Union[str, os.PathLike]) -> int:
        """Writes every stored example of the task to ``path`` as JSON lines
        (``id``, ``input``, ``target``, ``target_kind``, ``priority``,
        ``source``, ``feedback``, ``time_ms``, ``split``, ``state``); returns
        how many. With a store, the review queue's predictions are among them
        (``state`` ``pending_review``, ``reviewed`` or ``unreviewed``: their
        ``target`` is the model's guess, not an answer): filter by ``state``
        for a fine-tuning set.

        Raises:
            IoError: ``path`` cannot be written.

        >>> coordinator.export_dataset("synthesizer", "summary", "summaries.jsonl")
        120
        """
        out = ctypes.c_uint64()
        self._call(
            "export_dataset",
            _text(agent_name, "agent_name"),
            _text(task_type, "task_type"),
            _text(os.fspath(path), "path"),
            ctypes.byref(out),
        )
        return out.value

    def next_for_review(self, agent_name: str, task_type: str, n: int = 10) -> List[Dict[str, Any]]:
        """Hands out up to ``n`` predictions waiting for a person's label, the
        most useful first (dicts with ``review_id``, ``input_text``,
        ``predicted_output``, ``confidence``, ...). Answer each with
        :meth:`label` or give it back with :meth:`skip`.

        >>> item = coordinator.next_for_review("scout", "news", 1)[0]
        >>> coordinator.label(item["review_id"], "reuters")
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if not 0 <= n <= _U32_MS:
            raise InvalidArgumentError(f"n must be between 0 and {_U32_MS}, got {n}")
        return json.loads(
            self._text_call("next_for_review", _text(agent_name, "agent_name"), _text(task_type, "task_type"), n)
        )

    def label(self, review_id: int, output: Value, priority: Optional[int] = None) -> int:
        """Labels a review item: it becomes a correction (priority 2 unless
        given); returns the example's id.

        Raises:
            InvalidArgumentError: unknown or already labelled ``review_id``,
                a ``priority`` outside 0..3, or an output the task cannot
                learn.

        >>> item = coordinator.next_for_review("scout", "news", 1)[0]
        >>> coordinator.label(item["review_id"], "reuters")
        42
        """
        out = ctypes.c_uint64()
        level = -1 if priority is None else _int32(priority, "priority")
        if priority is not None and not 0 <= level <= 3:
            # -1 is how the C ABI is told "not given": it would be priority 2.
            raise InvalidArgumentError(f"priority must be in 0..=3, got {priority}")
        self._call("label", _id(review_id, "review_id"), _json(output, "output"), level, ctypes.byref(out))
        return out.value

    def skip(self, review_id: int) -> None:
        """Returns a handed-out review item to its queue, unlabelled.

        Raises:
            InvalidArgumentError: unknown, labelled or not handed out.

        >>> item = coordinator.next_for_review("scout", "news", 1)[0]
        >>> coordinator.skip(item["review_id"])  # someone else will label it
        """
        self._call("skip", _id(review_id, "review_id"))

    # -- Life cycle ----------------------------------------------------------

    def close(self) -> None:
        """Stops the training system: a running update finishes, every accepted
        example is written; later calls raise :class:`ShutDownError` and
        ``repr`` says closed. Closing twice is fine; leaving a ``with`` block
        closes it.

        Raises:
            StoreError: accepted examples could be neither written nor
                spooled (a failing database and a full disk) and are lost;
                it has stopped all the same.

        >>> with onthefly.Coordinator(data_dir="scout-data") as coordinator:
        ...     coordinator.add_training_example("scout", "news", "Storm hits", "bbc", 0.3)
        """
        try:
            if self._is_global:
                _check(lib.otf_shutdown())
            elif self._handle is not None:
                _check(lib.otf_coordinator_shutdown(self._handle))
        except StoreError:
            self._closed = True  # Stopped, with a loss to report.
            raise
        self._closed = True

    shutdown = close

    def __enter__(self) -> "Coordinator":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and _native is not None and lib is not None:
            self._handle = None
            # Stops it if still running, then releases it: nothing else can
            # be calling it, as nothing refers to this object any more.
            lib.otf_coordinator_free(handle)

    def __repr__(self) -> str:
        if self._closed or (not self._is_global and self._handle is None):
            state = "closed"
        elif self._started_in not in (None, os.getpid()):
            state = f"forked, started in process {self._started_in}"
        else:
            state = "open"
        return f"<onthefly.Coordinator {'global, ' if self._is_global else ''}{state}>"


#: Every Coordinator not collected yet, for the exit handler.
_OPEN: "weakref.WeakSet[Coordinator]" = weakref.WeakSet()

#: The multiprocessing worker whose finalizers include the exit handler.
_FINALIZED_IN: Optional[int] = None


@atexit.register
def _shut_down_at_exit() -> None:
    """Stops every instance while the interpreter finalises, before the
    process's C-level exit: libtorch creates some of its static objects
    lazily (its JIT-compiled kernels), after the library's own C exit handler
    was registered, so they are destroyed before that handler runs; an
    update still running then would call freed code. Here nothing has been
    destroyed yet."""
    for coordinator in list(_OPEN):
        try:
            coordinator.close()
        except OnTheFlyError:
            pass
    # NOT_INITIALIZED when the global instance never started: nothing to stop.
    lib.otf_shutdown()


def _shut_down_when_a_worker_ends() -> None:
    """Runs the exit handler also where ``atexit`` does not: multiprocessing
    ends a worker it forked (start methods fork and forkserver) with
    ``os._exit``, after running the multiprocessing finalizers registered in
    that worker (inherited ones are cleared). Once per worker; where atexit
    runs too (a spawned worker), the second run finds everything stopped."""
    global _FINALIZED_IN
    multiprocessing = sys.modules.get("multiprocessing")  # a worker has imported it
    if multiprocessing is None or multiprocessing.parent_process() is None or _FINALIZED_IN == os.getpid():
        return
    from multiprocessing import util

    _FINALIZED_IN = os.getpid()
    # 0: in the first round, before multiprocessing joins the worker's own children.
    util.Finalize(None, _shut_down_at_exit, exitpriority=0)


# -- The original's module-level functions, over the global instance ---------

_GLOBAL = Coordinator._global_instance()
_INIT_LOCK = threading.Lock()


def initialize_online_training(update_threshold: Optional[int] = None, **config: Unpack[Config]) -> Coordinator:
    """Starts the global training system and returns it.

    Calling it again with the same configuration returns the running
    instance; with another it raises :class:`AlreadyInitializedError`. After
    :func:`shutdown` the global instance cannot be started again in this
    process (open a :class:`Coordinator` instead). The keyword arguments are
    the keys of :class:`Config`, on top of the environment's configuration:
    ``update_threshold`` left out is ``TRAINING_UPDATE_THRESHOLD``, or 50.
    Without ``data_dir`` each program keeps its store in
    :func:`default_data_dir`.

    Raises:
        ForkedProcessError: in a process forked from the one that started
            the global instance (it cannot serve this one).

    >>> onthefly.initialize_online_training(update_threshold=20)
    <onthefly.Coordinator global, open>
    """
    if update_threshold is not None:
        config = {**config, "update_threshold": update_threshold}
    with _INIT_LOCK:
        _check(lib.otf_initialize(_config_json(config)))
        _GLOBAL._started_in = os.getpid()
    _shut_down_when_a_worker_ends()
    return _GLOBAL


def add_training_example(
    agent_name: str,
    task_type: str,
    input_text: str,
    expected_output: Value,
    uncertainty_score: float,
    importance_score: float = 0.5,
    source_url: str = "",
    user_feedback: Optional[str] = None,
    correction_priority: int = 0,
) -> int:
    """See :meth:`Coordinator.add_training_example` (on the global instance)."""
    return _GLOBAL.add_training_example(
        agent_name,
        task_type,
        input_text,
        expected_output,
        uncertainty_score,
        importance_score,
        source_url,
        user_feedback,
        correction_priority,
    )


def add_prediction_feedback(
    agent_name: str,
    task_type: str,
    input_text: str,
    predicted_output: Value,
    actual_output: Value,
    confidence_score: float,
    source_url: str = "",
) -> FeedbackOutcome:
    """See :meth:`Coordinator.add_prediction_feedback` (on the global instance)."""
    return _GLOBAL.add_prediction_feedback(
        agent_name, task_type, input_text, predicted_output, actual_output, confidence_score, source_url
    )


def add_user_correction(
    agent_name: str,
    task_type: str,
    input_text: str,
    incorrect_output: Value,
    correct_output: Value,
    priority: int = 2,
    user_feedback: Optional[str] = None,
) -> int:
    """See :meth:`Coordinator.add_user_correction` (on the global instance)."""
    return _GLOBAL.add_user_correction(
        agent_name, task_type, input_text, incorrect_output, correct_output, priority, user_feedback
    )


def get_training_status() -> Dict[str, Any]:
    """See :meth:`Coordinator.get_training_status` (on the global instance)."""
    return _GLOBAL.get_training_status()


#: The name the original's monitoring example used.
get_online_training_status = get_training_status


def force_update_agent(agent_name: str) -> None:
    """See :meth:`Coordinator.force_update_agent` (on the global instance)."""
    _GLOBAL.force_update_agent(agent_name)


def register_task(agent_name: str, task_type: str, kind: str) -> None:
    """See :meth:`Coordinator.register_task` (on the global instance)."""
    _GLOBAL.register_task(agent_name, task_type, kind)


def predict(agent_name: str, task_type: str, input_text: str) -> Prediction:
    """See :meth:`Coordinator.predict` (on the global instance)."""
    return _GLOBAL.predict(agent_name, task_type, input_text)


def metrics() -> str:
    """See :meth:`Coordinator.metrics` (on the global instance)."""
    return _GLOBAL.metrics()


def flush(timeout: float = 60.0) -> None:
    """See :meth:`Coordinator.flush` (on the global instance)."""
    _GLOBAL.flush(timeout)


def wait_for_idle(timeout: float = 60.0) -> None:
    """See :meth:`Coordinator.wait_for_idle` (on the global instance)."""
    _GLOBAL.wait_for_idle(timeout)


def shutdown() -> None:
    """Stops the global instance: a running update finishes, every accepted
    example is written; later calls raise :class:`ShutDownError`, and it
    cannot be started again in this process. A process that exits without
    it shuts down the same way on its way out.

    >>> onthefly.shutdown()
    """
    _GLOBAL.close()


async def flush_async(timeout: float = 60.0) -> None:
    """See :meth:`Coordinator.flush_async` (on the global instance)."""
    await _GLOBAL.flush_async(timeout)


async def wait_for_idle_async(timeout: float = 60.0) -> None:
    """See :meth:`Coordinator.wait_for_idle_async` (on the global instance)."""
    await _GLOBAL.wait_for_idle_async(timeout)


async def shutdown_async() -> None:
    """:func:`shutdown`, awaitable: the event loop runs on while a running
    update finishes.

    >>> await onthefly.shutdown_async()
    """
    await _GLOBAL.close_async()


def export_dataset(agent_name: str, task_type: str, path: Union[str, os.PathLike]) -> int:
    """See :meth:`Coordinator.export_dataset` (on the global instance)."""
    return _GLOBAL.export_dataset(agent_name, task_type, path)


def rollback_model(agent_name: str, task_type: str, version: int) -> None:
    """See :meth:`Coordinator.rollback_model` (on the global instance)."""
    _GLOBAL.rollback_model(agent_name, task_type, version)


def next_for_review(agent_name: str, task_type: str, n: int = 10) -> List[Dict[str, Any]]:
    """See :meth:`Coordinator.next_for_review` (on the global instance)."""
    return _GLOBAL.next_for_review(agent_name, task_type, n)


def label(review_id: int, output: Value, priority: Optional[int] = None) -> int:
    """See :meth:`Coordinator.label` (on the global instance)."""
    return _GLOBAL.label(review_id, output, priority)


def skip(review_id: int) -> None:
    """See :meth:`Coordinator.skip` (on the global instance)."""
    _GLOBAL.skip(review_id)


def list_checkpoints(agent_name: str, task_type: str) -> List[Dict[str, Any]]:
    """See :meth:`Coordinator.list_checkpoints` (on the global instance)."""
    return _GLOBAL.list_checkpoints(agent_name, task_type)


def adopt_original_database(database_url: Optional[str] = None) -> int:
    """Adopts the original JustNews system's PostgreSQL database (its tables
    moved aside, its examples imported); ``None`` for the one the environment
    names. Call it once before starting on that database; returns the rows
    this call imported (0 the second time).

    >>> onthefly.adopt_original_database("postgresql://justnews@localhost/justnews")
    12840
    """
    out = ctypes.c_uint64()
    _check(lib.otf_adopt_original_database(_text(database_url, "database_url"), ctypes.byref(out)))
    return out.value


def _document_module_functions() -> None:
    """Gives each module-level function its method's whole docstring (its
    arguments, return value, exceptions and example), on the global
    instance: ``help(onthefly.add_training_example)`` says everything."""
    for name in (
        "add_training_example",
        "add_prediction_feedback",
        "add_user_correction",
        "get_training_status",
        "force_update_agent",
        "register_task",
        "predict",
        "metrics",
        "flush",
        "wait_for_idle",
        "flush_async",
        "wait_for_idle_async",
        "export_dataset",
        "rollback_model",
        "list_checkpoints",
        "next_for_review",
        "label",
        "skip",
    ):
        method = getattr(Coordinator, name)
        globals()[name].__doc__ = (
            f"{method.__doc__}\n\n        On the global instance (:func:`initialize_online_training`); "
            "``NotInitializedError`` before it."
        )


_document_module_functions()
