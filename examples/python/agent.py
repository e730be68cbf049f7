"""A Python agent over the C ABI, standard library only (run as docs/python.md shows)."""
import ctypes, json, os, sys

lib = ctypes.CDLL(os.environ.get("ONTHEFLY_LIB", "target/release/libonthefly.so"))
S, D, I = ctypes.c_char_p, ctypes.c_double, ctypes.c_int32
lib.otf_initialize.argtypes = [S]
lib.otf_add_training_example.argtypes = [S, S, S, S, D, D, I, S, S, ctypes.c_void_p]
lib.otf_add_user_correction.argtypes = [S, S, S, S, S, I, S, ctypes.c_void_p]
lib.otf_last_error_message.restype = S

def check(code):  # 0 is OTF_RESULT_OK
    if code != 0:
        raise RuntimeError(f"onthefly error {code}: {lib.otf_last_error_message().decode()}")

check(lib.otf_initialize(sys.argv[1].encode() if len(sys.argv) > 1 else None))  # None: environment
for text, outlet in [("Markets rally as rates hold", "reuters"), ("Storm batters the coast", "bbc")]:
    check(lib.otf_add_training_example(b"scout", b"news", text.encode(), json.dumps(outlet).encode(),
                                       0.5, 0.5, 0, None, None, None))
check(lib.otf_add_user_correction(b"scout", b"news", b"Storm batters the coast", b'"cnn"', b'"bbc"', 2, None, None))
check(lib.otf_wait_for_idle(60000))
raw = ctypes.c_void_p()
check(lib.otf_get_training_status(ctypes.byref(raw)))
status = json.loads(ctypes.string_at(raw.value).decode())
lib.otf_string_free(raw)
print(json.dumps(status["agents"]["scout"]["models"]), status["agents"]["scout"]["examples_received"])
check(lib.otf_shutdown())
