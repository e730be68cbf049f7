"""The installed package finds libtorch through its own runpath, in the
torch wheel installed beside it: no LD_LIBRARY_PATH, no build folder."""

from __future__ import annotations

import glob
import os
import re
import subprocess

import onthefly


def test_the_library_finds_libtorch_beside_it_through_its_runpath() -> None:
    assert "LD_LIBRARY_PATH" not in os.environ
    package = os.path.dirname(onthefly.__file__)
    assert "site-packages" in package, f"not the installed package: {package}"
    (library,) = glob.glob(os.path.join(package, "libonthefly*.so"))
    dynamic = subprocess.run(["readelf", "-d", library], capture_output=True, text=True, check=True).stdout
    assert re.findall(r"\((?:RUNPATH|RPATH)\)[^\[]*\[([^\]]*)\]", dynamic) == ["$ORIGIN/../torch/lib"], dynamic
    assert os.path.exists(os.path.join(package, "..", "torch", "lib", "libtorch_cpu.so"))
    assert onthefly.library_version() == onthefly.__version__
