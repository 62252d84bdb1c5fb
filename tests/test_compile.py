"""``torch.compile`` under strict mode: compiled code draws the numbers eager code draws.

Each case compiles one tiny function in a fresh interpreter (inductor's
import and a first compilation take tens of seconds, and leave caches and
threads behind), so they are marked ``compile``: ``-m 'not compile'`` leaves
them out. Inductor's CPU code needs a C++ compiler; without one they skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from _subprocess import run_json

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.compile


def run(code: str, tmp_path: Path) -> Any:
    # A cache of its own: a compilation cached by an earlier run would hide a slow path.
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    return run_json(code, env=env, timeout=600)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_compiled_dropout_and_rand_draw_as_eager_inside_a_strict_scope(
    device: str, tmp_path: Path
) -> None:
    if device == "cpu" and not any(map(shutil.which, ("g++", "c++", "clang++"))):
        pytest.skip("inductor's CPU code needs a C++ compiler (g++, c++ or clang++)")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    out = run(
        f"""
        import json, sys
        import torch
        from seedscope import deterministic

        def noisy(x):
            dropped = torch.nn.functional.dropout(x, 0.5, training=True)
            return dropped + torch.rand(8, device=x.device)

        x = torch.ones(8, device={device!r})
        with deterministic(0):
            eager = noisy(x).tolist()
        compiled = torch.compile(noisy)  # imports inductor's config: outside the scope
        loaded = "torch._inductor.config" in sys.modules
        with deterministic(0, strict=True):
            first = compiled(x).tolist()
        with deterministic(0, strict=True):
            again = compiled(x).tolist()
        import torch._inductor.config as config
        print(json.dumps({{"loaded": loaded, "eager": eager, "compiled": [first, again],
                           "after": config.fallback_random}}))
        """,
        tmp_path,
    )
    assert out["loaded"] is True
    assert out["compiled"] == [out["eager"], out["eager"]]
    assert out["after"] is False


def test_inductor_imported_inside_a_strict_scope_gets_fallback_random(tmp_path: Path) -> None:
    if not any(map(shutil.which, ("g++", "c++", "clang++"))):
        pytest.skip("inductor's CPU code needs a C++ compiler (g++, c++ or clang++)")
    out = run(
        """
        import json, sys
        import torch
        from seedscope import deterministic

        def noisy(x):
            return x * torch.rand(4)

        x = torch.ones(4)
        with deterministic(1):
            eager = noisy(x).tolist()
        with deterministic(1, strict=True):
            assert "torch._inductor.config" not in sys.modules
            compiled = torch.compile(noisy)(x).tolist()  # inductor is first imported here
        import torch._inductor.config as config
        print(json.dumps({"same": compiled == eager, "after": config.fallback_random}))
        """,
        tmp_path,
    )
    assert out == {"same": True, "after": False}
