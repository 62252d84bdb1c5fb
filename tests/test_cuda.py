"""CUDA behaviour: seeding every device, never starting CUDA, and lazy seeds.

Skipped without a CUDA device. Each case runs in a fresh interpreter, because
whether CUDA has started is process-wide and cannot be undone.
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from _subprocess import run_json

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def run(code: str) -> Any:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    prelude = "import json, torch\nfrom seedscope import deterministic, isolated\n"
    return run_json(prelude + textwrap.dedent(code))


# State of every device's generator as plain lists, comparable across processes.
STATES = "[s.tolist() for s in torch.cuda.get_rng_state_all()]"


def test_entering_and_leaving_a_scope_never_starts_cuda() -> None:
    out = run(
        """
        with deterministic(3, strict=True):
            inside = torch.cuda.is_initialized()
        with isolated():
            pass
        print(json.dumps({"inside": inside, "after": torch.cuda.is_initialized()}))
        """
    )
    assert out == {"inside": False, "after": False}


def test_draws_on_every_device_match_the_recipe() -> None:
    out = run(
        """
        n = torch.cuda.device_count()
        def draws():
            return [torch.rand(4, device=f"cuda:{i}").tolist() for i in range(n)]
        torch.manual_seed(11); torch.cuda.manual_seed_all(11)
        expected = draws()
        torch.manual_seed(99)
        with deterministic(11):
            got = draws()
        print(json.dumps({"expected": expected, "got": got}))
        """
    )
    assert out["got"] == out["expected"]


def test_outer_cuda_stream_continues_after_block_when_cuda_was_running() -> None:
    out = run(
        """
        torch.cuda.manual_seed_all(5)
        a, b = torch.rand(3, device="cuda").tolist(), torch.rand(3, device="cuda").tolist()
        torch.cuda.manual_seed_all(5)
        first = torch.rand(3, device="cuda").tolist()
        with deterministic(1):
            torch.rand(100, device="cuda")
        second = torch.rand(3, device="cuda").tolist()
        print(json.dumps({"expected": [a, b], "got": [first, second]}))
        """
    )
    assert out["got"] == out["expected"]


def assert_like_a_scope_free_start(scoped: str, scope_seed: int) -> None:
    """Run ``scoped`` twice; its device states must look like a start-up without a scope.

    Depending on the release, torch starts device generators from a fixed seed
    (then the states must equal a fresh start's) or from a random one (then
    they must differ between runs, and not carry the scope's seed).
    """
    first, second = run(scoped), run(scoped)
    fresh = [run(f"torch.cuda.init()\nprint(json.dumps({{'states': {STATES}}}))") for _ in "ab"]
    if fresh[0] == fresh[1]:
        assert first["states"] == fresh[0]["states"]
    else:
        assert first["states"] != second["states"]
        assert scope_seed not in first["seeds"]


SEEDS = "[g.initial_seed() for g in torch.cuda.default_generators]"


def test_cuda_started_inside_scope_is_seeded_and_reset_to_a_scope_free_start() -> None:
    scoped = f"""
        with deterministic(11):
            inside = torch.rand(4, device="cuda").tolist()
        print(json.dumps({{"inside": inside, "states": {STATES}, "seeds": {SEEDS}}}))
        """
    reference = run(
        """
        torch.manual_seed(11)
        print(json.dumps({"draws": torch.rand(4, device="cuda").tolist()}))
        """
    )
    assert run(scoped)["inside"] == reference["draws"]
    assert_like_a_scope_free_start(scoped, 11)


def test_outer_queued_seed_survives_a_scope_in_which_cuda_starts() -> None:
    out = run(
        f"""
        torch.cuda.manual_seed_all(123)
        with deterministic(7):
            torch.rand(4, device="cuda")
        print(json.dumps({{"states": {STATES}}}))
        """
    )
    reference = run(
        f"""
        torch.cuda.manual_seed_all(123)
        torch.cuda.init()
        print(json.dumps({{"states": {STATES}}}))
        """
    )
    assert out["states"] == reference["states"]


def test_queued_seed_does_not_fire_after_a_scope_in_which_cuda_never_started() -> None:
    scoped = f"""
        with deterministic(7):
            pass
        torch.cuda.init()
        print(json.dumps({{"states": {STATES}, "seeds": {SEEDS}}}))
        """
    assert_like_a_scope_free_start(scoped, 7)


def test_outer_queued_seed_is_kept_when_cuda_never_started_in_the_scope() -> None:
    out = run(
        f"""
        torch.cuda.manual_seed_all(9)
        with deterministic(7):
            pass
        torch.cuda.init()
        print(json.dumps({{"states": {STATES}}}))
        """
    )
    reference = run(
        f"""
        torch.cuda.manual_seed_all(9)
        torch.cuda.init()
        print(json.dumps({{"states": {STATES}}}))
        """
    )
    assert out["states"] == reference["states"]


def test_strict_mode_on_a_started_device_warns_that_cublas_config_is_too_late() -> None:
    out = run(
        """
        import os, warnings
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        torch.cuda.init()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with deterministic(1, strict=True):
                inside = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
                algorithms = torch.are_deterministic_algorithms_enabled()
        print(json.dumps({
            "inside": inside,
            "algorithms": algorithms,
            "after": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "warned": any("CUBLAS_WORKSPACE_CONFIG" in str(w.message) for w in caught),
        }))
        """
    )
    assert out == {"inside": ":4096:8", "algorithms": True, "after": None, "warned": True}


def test_strict_mode_before_cuda_starts_makes_cublas_matmul_deterministic() -> None:
    out = run(
        """
        import os
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        with deterministic(1, strict=True):
            a = torch.randn(512, 512, device="cuda")
            first = (a @ a).sum().item()
            second = (a @ a).sum().item()
            tf32 = torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32
        print(json.dumps({"same": first == second, "tf32": tf32}))
        """
    )
    assert out == {"same": True, "tf32": False}


def test_decorated_generator_steps_keep_their_own_cuda_stream() -> None:
    out = run(
        """
        @deterministic(4)
        def numbers():
            for _ in range(3):
                yield torch.rand(2, device="cuda").tolist()
        torch.cuda.init()
        got = []
        for value in numbers():
            got.append(value)
            torch.rand(50, device="cuda")  # the consumer's own draws
        torch.manual_seed(4)
        expected = [torch.rand(2, device="cuda").tolist() for _ in range(3)]
        print(json.dumps({"got": got, "expected": expected}))
        """
    )
    assert out["got"] == out["expected"]
