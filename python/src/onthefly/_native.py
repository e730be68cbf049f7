"""The shared library and the C signatures of its functions (``onthefly.h``).

Every function of the C ABI exists twice: ``otf_<op>`` on the process's
global instance and ``otf_coordinator_<op>`` on a handle, which comes first.
"""

from __future__ import annotations

import ctypes
import glob
import os
from ctypes import POINTER, c_char_p, c_double, c_int32, c_uint32, c_uint64, c_void_p

#: The library file: ``ONTHEFLY_LIBRARY`` when set (a development build),
#: otherwise the one installed inside this package.
_HERE = os.path.dirname(os.path.abspath(__file__))


def _library_path() -> str:
    override = os.environ.get("ONTHEFLY_LIBRARY")
    if override:
        return override
    found = sorted(glob.glob(os.path.join(_HERE, "libonthefly*.so")))
    if not found:
        raise ImportError(f"the onthefly shared library is missing from {_HERE}: reinstall the package")
    return found[0]


lib = ctypes.CDLL(_library_path())

_S = c_char_p
_OUT_TEXT = POINTER(c_void_p)

#: Arguments of each operation after the handle (the same for both forms).
_OPERATIONS = {
    "add_training_example": [_S, _S, _S, _S, c_double, c_double, c_int32, _S, _S, POINTER(c_uint64)],
    "add_prediction_feedback": [_S, _S, _S, _S, c_double, _S, _S, POINTER(c_uint32)],
    "add_user_correction": [_S, _S, _S, _S, _S, c_int32, _S, POINTER(c_uint64)],
    "predict": [_S, _S, _S, _OUT_TEXT],
    "force_update_agent": [_S],
    "register_task": [_S, _S, _S],
    "list_checkpoints": [_S, _S, _OUT_TEXT],
    "get_training_status": [_OUT_TEXT],
    "metrics_text": [_OUT_TEXT],
    "rollback_model": [_S, _S, c_uint64],
    "flush": [c_uint32],
    "wait_for_idle": [c_uint32],
    "export_dataset": [_S, _S, _S, POINTER(c_uint64)],
    "next_for_review": [_S, _S, c_uint32, _OUT_TEXT],
    "label": [c_uint64, _S, c_int32, POINTER(c_uint64)],
    "skip": [c_uint64],
}

for _name, _args in _OPERATIONS.items():
    _global = getattr(lib, f"otf_{_name}")
    _global.argtypes, _global.restype = _args, c_uint32
    _handle = getattr(lib, f"otf_coordinator_{_name}")
    _handle.argtypes, _handle.restype = [c_void_p, *_args], c_uint32

lib.otf_initialize.argtypes, lib.otf_initialize.restype = [_S], c_uint32
lib.otf_shutdown.argtypes, lib.otf_shutdown.restype = [], c_uint32
lib.otf_coordinator_new.argtypes, lib.otf_coordinator_new.restype = [_S, POINTER(c_void_p)], c_uint32
lib.otf_coordinator_shutdown.argtypes, lib.otf_coordinator_shutdown.restype = [c_void_p], c_uint32
lib.otf_coordinator_free.argtypes, lib.otf_coordinator_free.restype = [c_void_p], None
lib.otf_config_from_environment.argtypes = [_OUT_TEXT]
lib.otf_config_from_environment.restype = c_uint32
lib.otf_config_from_environment_with.argtypes = [_S, _OUT_TEXT]
lib.otf_config_from_environment_with.restype = c_uint32
lib.otf_adopt_original_database.argtypes = [_S, POINTER(c_uint64)]
lib.otf_adopt_original_database.restype = c_uint32
lib.otf_string_free.argtypes, lib.otf_string_free.restype = [c_void_p], None
lib.otf_last_error_message.argtypes, lib.otf_last_error_message.restype = [], c_char_p
lib.otf_version.argtypes, lib.otf_version.restype = [], c_char_p


def last_error() -> str:
    """The message of the calling thread's last call."""
    message = lib.otf_last_error_message()
    return message.decode("utf-8", "replace") if message else ""


def take_text(pointer: c_void_p) -> str:
    """The text of a string the library returned, which is then freed."""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        lib.otf_string_free(pointer)
