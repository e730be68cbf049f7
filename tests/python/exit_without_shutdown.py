"""Returns without otf_shutdown while updates run (what a script that ends,
or raises, does): the library must stop its threads and store every
accepted example on the way out. Prints "ACCEPTED <count>".
Usage: exit_without_shutdown.py CONFIG_JSON EXAMPLES (ONTHEFLY_LIB names the library)."""
import ctypes, json, os, sys

lib = ctypes.CDLL(os.environ["ONTHEFLY_LIB"])
S, D, I = ctypes.c_char_p, ctypes.c_double, ctypes.c_int32
lib.otf_initialize.argtypes = [S]
lib.otf_add_training_example.argtypes = [S, S, S, S, D, D, I, S, S, ctypes.c_void_p]
lib.otf_force_update_agent.argtypes = [S]
lib.otf_last_error_message.restype = S

if lib.otf_initialize(sys.argv[1].encode()) != 0:
    sys.exit("otf_initialize: " + lib.otf_last_error_message().decode())
outlets = ["bbc", "cnn", "reuters"]
accepted = 0
for i in range(int(sys.argv[2])):
    outlet = outlets[i % 3]
    text = f"article {i} from {outlet} about topic {i % 17}".encode()
    if lib.otf_add_training_example(b"scout", b"news", text, json.dumps(outlet).encode(),
                                    0.5, 0.5, 0, None, None, None) == 0:
        accepted += 1
lib.otf_force_update_agent(b"scout")
print("ACCEPTED", accepted, flush=True)
# no otf_shutdown
