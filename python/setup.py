"""Builds the Rust crate in the folder above as the package's shared library.

The library is the crate's C ABI (``include/onthefly.h``) and nothing else;
``onthefly/_native.py`` declares its functions for ctypes. It finds libtorch
through its runpath, relative to where pip installs the ``torch`` package
(``site-packages/onthefly/`` next to ``site-packages/torch/lib``), so no
``LD_LIBRARY_PATH`` is needed.
"""

import importlib.util
import os

from setuptools import setup
from setuptools_rust import Binding, RustExtension

try:
    from setuptools.command.bdist_wheel import bdist_wheel  # setuptools >= 70.1
except ImportError:
    from wheel.bdist_wheel import bdist_wheel


class PlatformWheel(bdist_wheel):
    """A wheel for every CPython 3 of the platform (``py3-none-linux_x86_64``):
    the package reaches its library through ctypes, not Python's C API, so
    one wheel serves every interpreter version."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


def torch_dir() -> str:
    """The torch package of the build environment (torch==2.13.0)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("building onthefly needs torch==2.13.0 installed (a build requirement)")
    return spec.submodule_search_locations[0]


HERE = os.path.dirname(os.path.abspath(__file__))

setup(
    cmdclass={"bdist_wheel": PlatformWheel},
    rust_extensions=[
        RustExtension(
            "onthefly.libonthefly",
            path=os.path.join(HERE, "..", "Cargo.toml"),
            binding=Binding.NoBinding,
            env={
                **os.environ,
                # tch builds against this torch (it wins over the repository's
                # .cargo/config.toml, which names the developers' .venv).
                # `make test` names the checkout's own libtorch (the same
                # version), so cargo reuses the crates its tests compiled.
                "LIBTORCH": os.environ.get("ONTHEFLY_BUILD_LIBTORCH") or torch_dir(),
                # build.rs writes this runpath instead of the build machine's
                # absolute libtorch folder.
                "ONTHEFLY_RPATH": "$ORIGIN/../torch/lib",
            },
        )
    ],
)
