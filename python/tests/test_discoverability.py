"""What a newcomer finds without reading the source: every public function
documents its arguments, what it returns or raises, and shows an example;
the configuration's keys are typed (completion in an editor); the kept
checkpoint versions are listed for rollback_model."""

from __future__ import annotations

import ctypes
import inspect
import json

import pytest

import onthefly
from onthefly import Coordinator, _native

PUBLIC_METHODS = [
    name
    for name, member in vars(Coordinator).items()
    if not name.startswith("_") and (inspect.isfunction(member) or inspect.iscoroutinefunction(member))
]


@pytest.mark.parametrize("name", PUBLIC_METHODS)
def test_every_method_documents_itself(name: str) -> None:
    doc = inspect.getdoc(getattr(Coordinator, name)) or ""
    assert len(doc.splitlines()) >= 3, f"{name}: {doc!r}"
    if name not in ("skip", "label"):
        assert ">>>" in doc, f"{name} shows no example"


@pytest.mark.parametrize("name", [n for n in onthefly.__all__ if inspect.isfunction(getattr(onthefly, n))])
def test_every_module_function_says_as_much_as_its_method(name: str) -> None:
    doc = inspect.getdoc(getattr(onthefly, name)) or ""
    method = getattr(Coordinator, name, None)
    # shutdown and shutdown_async say it in their own words (the global
    # instance cannot start again).
    if method is not None and name not in ("shutdown", "shutdown_async"):
        assert inspect.getdoc(method) in doc, name
    assert len(doc.splitlines()) >= 3 and ">>>" in doc, f"{name}: {doc!r}"


def test_the_typed_configuration_has_every_key_the_library_reads() -> None:
    raw = ctypes.c_void_p()
    assert onthefly.lib.otf_config_from_environment(ctypes.byref(raw)) == 0
    library_keys = set(json.loads(_native.take_text(raw)))
    assert set(onthefly.Config.__annotations__) == library_keys


def test_list_checkpoints_names_the_versions_rollback_restores(config) -> None:
    with Coordinator(**config, update_threshold=40) as c:
        for round in range(3):
            for i in range(40):
                outlet = ["bbc", "cnn"][i % 2]
                c.add_training_example("scout", "news", f"round {round} {outlet} story {i}", outlet, 0.5)
            c.force_update_agent("scout")
            c.wait_for_idle(300)
        kept = c.list_checkpoints("scout", "news")
        assert [k["version"] for k in kept] == sorted(k["version"] for k in kept) and len(kept) >= 2, kept
        assert [k["serving"] for k in kept].count(True) == 1 and kept[-1]["serving"], kept
        for k in kept[1:]:
            assert k["metric"] == "accuracy" and 0 <= k["after"] <= 1 and k["created_ms"] > 1.7e12, k
        c.rollback_model("scout", "news", kept[0]["version"])
        assert c.predict("scout", "news", "a bbc story").model_version == kept[0]["version"]
        assert [k["serving"] for k in c.list_checkpoints("scout", "news")][0] is True
        with pytest.raises(onthefly.UnknownAgentError):
            c.list_checkpoints("nobody", "news")
