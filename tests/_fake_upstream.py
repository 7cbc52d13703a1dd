"""``benchmarks/fake_server.py`` for tests: load it and serve it in-process on a free port.

The benchmarks keep the fake server as a script (``benchmarks`` is no package), so it is loaded
from its file here, under a name of its own that shadows nothing::

    with fake_upstream() as root:       # "http://127.0.0.1:PORT", stopped when the block ends
        solver = OpenAISolver("fake", f"{root}/v1")
        prm = PoolingPRM(model="fake-prm", base_url=root)
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "fake_server.py"
_NAME = "sal_benchmarks_fake_server"


def fake_server_module() -> ModuleType:
    """``benchmarks/fake_server.py``, imported once."""
    module = sys.modules.get(_NAME)
    if module is None:
        spec = importlib.util.spec_from_file_location(_NAME, _PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_NAME] = module  # before running it: dataclasses look their module up
        spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def fake_upstream(*, steps: int = 4, jitter: bool = True) -> Iterator[str]:
    """Serve a latency-free fake server; yield its root URL (``http://127.0.0.1:PORT``).

    Args:
        steps: steps of every scripted solution.
        jitter: vary scores by text, so candidates rarely tie and an order that changed would
            show.
    """
    module = fake_server_module()
    server = module.FakeServer(gen_latency=0.0, prm_latency=0.0, steps=steps, jitter=jitter)
    with module.serving(server) as root:
        yield str(root)


def score_of(text: str, *, jitter: bool = True) -> float:
    """The score the fake server gives ``text`` (see ``benchmarks/fake_server.py``)."""
    return float(fake_server_module().score_of(text, jitter=jitter))
