"""Generators made without a seed inside a seeding entry take ``derive_seed(seed, "entropy", n)``.

Each numpy constructor is checked against the same generator made from the
derived value; "across processes" means real interpreters started afresh;
outside scopes, under ``isolated()`` and with ``os_entropy=True`` entropy
still comes from the operating system, which two processes never share.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import warnings
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _cli import environment, python, seedscope, write
from _subprocess import in_child, run_json

from seedscope import (
    ConcurrentScopesWarning,
    Snapshot,
    _entropy,
    capture,
    derive_seed,
    deterministic,
    isolated,
    private_stream,
)


def entropy(seed: int, n: int) -> int:
    return derive_seed(seed, "entropy", n)


def first_draw() -> float:
    """The first draw of a numpy generator made without a seed, here and now."""
    return float(np.random.default_rng().random())


def seeded_draw(seed: int) -> float:
    return float(np.random.default_rng(seed).random())


def legacy_key(value: int) -> list[int]:
    """The MT19937 key ``np.random.seed()`` makes when ``SeedSequence()`` draws ``value``."""
    key = np.random.SeedSequence(value).generate_state(624)
    key[0] = 0x80000000  # numpy's legacy seeding sets the top bit, so the key is never zero
    return [int(word) for word in key]


# -- what is seeded --------------------------------------------------------------------


def _draw_of(value: Any) -> Any:
    """What a generator-like object gives next, as plain data."""
    if isinstance(value, np.random.SeedSequence):
        return [value.entropy, *map(int, value.generate_state(4))]
    if isinstance(value, np.random.Generator):
        return float(value.random())
    if isinstance(value, np.random.RandomState):
        return float(value.rand())
    return int(value.random_raw())  # a bit generator


# The constructor called without a seed, and the same generator made from an entropy value.
CONSTRUCTORS: dict[str, tuple[Callable[[], Any], Callable[[int], Any]]] = {
    "default_rng()": (np.random.default_rng, np.random.default_rng),
    "SeedSequence()": (np.random.SeedSequence, np.random.SeedSequence),
    "RandomState()": (
        np.random.RandomState,
        lambda s: np.random.RandomState(np.random.MT19937(s)),
    ),
    "Generator(PCG64())": (
        lambda: np.random.Generator(np.random.PCG64()),
        lambda s: np.random.Generator(np.random.PCG64(s)),
    ),
    "PCG64()": (np.random.PCG64, np.random.PCG64),
    "PCG64DXSM()": (np.random.PCG64DXSM, np.random.PCG64DXSM),
    "MT19937()": (np.random.MT19937, np.random.MT19937),
    "Philox()": (np.random.Philox, np.random.Philox),
    "SFC64()": (np.random.SFC64, np.random.SFC64),
}


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_an_unseeded_numpy_constructor_in_an_entry_takes_the_derived_entropy(name: str) -> None:
    unseeded, seeded = CONSTRUCTORS[name]
    with deterministic(42):
        made = [_draw_of(unseeded()) for _ in range(2)]
    assert made == [_draw_of(seeded(entropy(42, n))) for n in (0, 1)]


def test_the_seed_sequence_records_the_derived_entropy() -> None:
    with deterministic(7):
        sequence = np.random.SeedSequence()
    assert sequence.entropy == entropy(7, 0)


def test_np_random_seed_without_a_seed_takes_the_derived_entropy_too() -> None:
    with deterministic(42):
        np.random.seed()
        key = [int(word) for word in np.random.get_state(legacy=False)["state"]["key"]]
    assert key == legacy_key(entropy(42, 0))


def test_two_unseeded_generators_in_one_entry_differ() -> None:
    with deterministic(0):
        draws = [first_draw() for _ in range(3)]
    assert len(set(draws)) == 3


def test_entering_again_repeats_the_unseeded_generators() -> None:
    scope = deterministic(3)
    with scope:
        first = [first_draw(), first_draw()]
    with scope:
        second = [first_draw(), first_draw()]
    assert first == second == [seeded_draw(entropy(3, n)) for n in (0, 1)]


def test_a_different_seed_gives_different_generators() -> None:
    with deterministic(1):
        one = first_draw()
    with deterministic(2):
        two = first_draw()
    assert one != two


def test_numpy_and_torch_share_the_entrys_count() -> None:
    with deterministic(5):
        numpy_draw = first_draw()
        torch_seed = torch.seed()
        second_numpy_draw = first_draw()
    assert numpy_draw == seeded_draw(entropy(5, 0))
    assert torch_seed == entropy(5, 1)
    assert second_numpy_draw == seeded_draw(entropy(5, 2))


# -- across processes ------------------------------------------------------------------

EVERY_CONSTRUCTOR = """
    import json
    import numpy as np
    import torch
    from seedscope import deterministic

    def draw(value):
        if isinstance(value, np.random.SeedSequence):
            return str(value.entropy)
        if isinstance(value, np.random.Generator):
            return value.random()
        if isinstance(value, np.random.RandomState):
            return value.rand()
        return str(value.random_raw())

    def every_constructor():
        made = [
            np.random.default_rng(),
            np.random.SeedSequence(),
            np.random.RandomState(),
            np.random.Generator(np.random.PCG64()),
            np.random.PCG64(),
            np.random.MT19937(),
            np.random.Philox(),
            np.random.SFC64(),
        ]
        np.random.seed()
        draws = [draw(value) for value in made] + [np.random.rand()]
        return draws + [torch.seed(), torch.random.seed(), torch.rand(()).item()]

    with deterministic(SEED):
        inside = every_constructor()
    print(json.dumps({"inside": inside, "outside": every_constructor()}))
"""


@pytest.fixture(scope="module")
def two_processes() -> tuple[Any, Any]:
    """What ``EVERY_CONSTRUCTOR`` under seed 42 prints in each of two fresh interpreters."""
    code = EVERY_CONSTRUCTOR.replace("SEED", "42")
    return run_json(code), run_json(code)


def test_the_same_code_under_the_same_seed_repeats_in_another_process(
    two_processes: tuple[Any, Any],
) -> None:
    first, second = two_processes
    assert first["inside"] == second["inside"]
    assert len(set(map(str, first["inside"]))) == len(first["inside"])  # all distinct
    assert first["inside"][0] == seeded_draw(entropy(42, 0))
    assert first["inside"][9:11] == [entropy(42, 9), entropy(42, 10)]


def test_outside_scopes_every_process_takes_os_entropy(two_processes: tuple[Any, Any]) -> None:
    first, second = two_processes
    for mine, theirs in zip(first["outside"], second["outside"], strict=True):
        assert mine != theirs


def test_a_library_first_imported_inside_the_entry_is_seeded_too() -> None:
    code = """
        import json, sys
        from seedscope import deterministic
        assert "numpy" not in sys.modules
        with deterministic(42):
            import numpy as np
            draw = np.random.default_rng().random()
        print(json.dumps(draw))
    """
    assert run_json(code) == seeded_draw(entropy(42, 0))


def test_a_first_entry_that_restores_rather_than_seeds_is_covered_too() -> None:
    stream = private_stream(7)
    with stream:
        pass
    # In a fresh process, the first entry ever brings back the stream's state: nothing is seeded.
    code = f"""
        import json
        import numpy.random as npr
        from seedscope import private_stream
        stream = private_stream(7)
        stream.load_state_dict(json.loads({json.dumps(json.dumps(stream.state_dict()))}))
        with stream:
            draw = npr.default_rng().random()
        print(json.dumps(draw))
    """
    assert run_json(code) == seeded_draw(entropy(7, 0))


# -- what stays as it is ---------------------------------------------------------------


def test_outside_scopes_unseeded_generators_are_not_derived_from_anything() -> None:
    with deterministic(0):
        pass  # the hooks are in place from here on
    outside = [first_draw(), first_draw()]
    assert outside[0] != outside[1]
    assert not {*outside} & {seeded_draw(entropy(0, n)) for n in range(3)}


def test_under_isolated_unseeded_generators_take_os_entropy() -> None:
    with isolated():
        draws = [first_draw(), first_draw()]
    assert not {*draws} & {seeded_draw(entropy(0, n)) for n in range(3)}


def test_an_isolated_block_inside_an_entry_takes_os_entropy_and_no_count() -> None:
    with deterministic(8):
        with isolated():
            isolated_draw = first_draw()
        after = first_draw()
    assert isolated_draw != seeded_draw(entropy(8, 0))
    assert after == seeded_draw(entropy(8, 0))


def test_random_random_without_a_seed_is_left_unpredictable() -> None:
    code = """
        import json, random, tempfile
        import numpy as np
        from seedscope import deterministic
        with deterministic(42):
            print(json.dumps([random.Random().random(), next(tempfile._get_candidate_names())]))
    """
    first, second = run_json(code), run_json(code)
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_a_scope_without_the_numpy_source_leaves_numpy_alone() -> None:
    with deterministic(4, sources=["python", "torch"]):
        numpy_draw = first_draw()
        torch_seed = torch.seed()
    assert numpy_draw != seeded_draw(entropy(4, 0))
    assert torch_seed == entropy(4, 0)


def test_a_scope_without_the_torch_source_leaves_torch_seed_alone() -> None:
    with deterministic(4, sources=["numpy"]):
        torch_seed = torch.seed()
        numpy_draw = first_draw()
    assert torch_seed != entropy(4, 0)
    assert numpy_draw == seeded_draw(entropy(4, 0))


# -- opting out --------------------------------------------------------------------------


def test_os_entropy_true_leaves_unseeded_generators_to_the_os() -> None:
    with deterministic(42, os_entropy=True):
        draws = [first_draw(), first_draw()]
        torch_seed = torch.seed()
    assert not {*draws} & {seeded_draw(entropy(42, n)) for n in range(3)}
    assert torch_seed not in {entropy(42, n) for n in range(3)}


def test_os_entropy_true_differs_from_process_to_process() -> None:
    code = """
        import json
        import numpy as np
        from seedscope import deterministic
        with deterministic(42, os_entropy=True):
            print(json.dumps(np.random.default_rng().random()))
    """
    assert run_json(code) != run_json(code)


def test_the_innermost_entry_decides_whether_to_opt_out() -> None:
    with deterministic(1):
        with deterministic(2, os_entropy=True):
            opted_out = first_draw()
        with deterministic(3):
            with deterministic(1, os_entropy=True):
                pass
            inner = first_draw()
        outer = first_draw()
    assert opted_out != seeded_draw(entropy(2, 0))
    assert inner == seeded_draw(entropy(3, 0))
    assert outer == seeded_draw(entropy(1, 0))


def test_os_entropy_is_an_option_of_the_scope() -> None:
    assert deterministic(1).os_entropy is False
    scope = deterministic(1, os_entropy=True, strict=True)
    assert scope.os_entropy is True
    assert repr(scope) == "deterministic(1, strict=True, os_entropy=True)"
    assert repr(deterministic(1)) == "deterministic(1)"


@pytest.mark.parametrize("value", [1, None, "yes"])
def test_os_entropy_must_be_a_bool(value: object) -> None:
    with pytest.raises(TypeError, match=rf"os_entropy must be True or False, not {value!r}"):
        deterministic(1, os_entropy=value)  # type: ignore[call-overload]


# -- torch.seed() --------------------------------------------------------------------------


@pytest.mark.parametrize("seed_function", ["torch.seed", "torch.random.seed"])
def test_torch_seed_in_an_entry_seeds_from_the_derived_value_and_returns_it(
    seed_function: str,
) -> None:
    with deterministic(42):
        # Looked up at the call, as torch.seed() does: an earlier lookup may predate the hook.
        returned = torch.seed() if seed_function == "torch.seed" else torch.random.seed()
        initial = torch.initial_seed()
        value = torch.rand(3)
    expected = torch.rand(3, generator=torch.Generator().manual_seed(entropy(42, 0)))
    assert returned == initial == entropy(42, 0)
    assert torch.equal(value, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_seed_in_an_entry_seeds_cuda_with_the_same_value() -> None:
    with deterministic(42):
        returned = torch.seed()
        cuda_seed = torch.cuda.initial_seed()
        value = torch.rand(3, device="cuda")
    expected = torch.rand(3, device="cuda", generator=torch.Generator("cuda").manual_seed(returned))
    assert cuda_seed == returned == entropy(42, 0)
    assert torch.equal(value, expected)


def test_torch_seed_outside_scopes_still_seeds_from_the_os() -> None:
    with deterministic(0):
        pass
    assert torch.seed is torch.random.seed
    seeds = {torch.seed() for _ in range(3)}
    assert len(seeds) == 3
    assert not seeds & {entropy(0, n) for n in range(3)}


# -- which entry counts ---------------------------------------------------------------------


def test_each_entry_counts_its_own_requests_from_zero() -> None:
    with deterministic(1):
        outer_first = first_draw()
        with deterministic(2):
            inner = [first_draw(), first_draw()]
        outer_second = first_draw()
    assert outer_first == seeded_draw(entropy(1, 0))
    assert inner == [seeded_draw(entropy(2, n)) for n in (0, 1)]
    assert outer_second == seeded_draw(entropy(1, 1))


def test_a_suspended_generator_keeps_its_count_between_steps() -> None:
    @deterministic(6)
    def augmentations() -> Generator[float, None, None]:
        while True:
            yield first_draw()

    steps = augmentations()
    drawn = [next(steps)]
    between = first_draw()  # the caller, outside any scope
    with deterministic(9):
        callers_scope = first_draw()
        drawn.append(next(steps))
    drawn.append(next(steps))
    steps.close()
    assert drawn == [seeded_draw(entropy(6, n)) for n in range(3)]
    assert callers_scope == seeded_draw(entropy(9, 0))
    assert between not in drawn


def test_interleaved_tasks_each_count_in_their_own_entry() -> None:
    @deterministic(11)
    async def worker(log: list[float]) -> None:
        for _ in range(3):
            log.append(first_draw())
            await asyncio.sleep(0)

    async def both() -> tuple[list[float], list[float]]:
        first: list[float] = []
        second: list[float] = []
        await asyncio.gather(worker(first), worker(second))
        return first, second

    first, second = asyncio.run(both())
    assert first == second == [seeded_draw(entropy(11, n)) for n in range(3)]


def test_a_thread_uses_its_own_innermost_entry() -> None:
    drawn: dict[str, float] = {}

    def without_scope() -> None:
        drawn["bare"] = first_draw()

    def with_scope() -> None:
        with deterministic(2):
            drawn["scoped"] = first_draw()

    with deterministic(1):
        thread = threading.Thread(target=without_scope)
        thread.start()
        thread.join()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConcurrentScopesWarning)
            thread = threading.Thread(target=with_scope)
            thread.start()
            thread.join()
        main = first_draw()
    assert main == seeded_draw(entropy(1, 0))  # neither thread advanced this entry's count
    assert drawn["scoped"] == seeded_draw(entropy(2, 0))
    assert drawn["bare"] not in {seeded_draw(entropy(s, n)) for s in (1, 2) for n in range(3)}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_counts_afresh_under_its_own_seed() -> None:
    with deterministic(42):
        parent_first = first_draw()
        children = [in_child(lambda: [first_draw(), first_draw()]) for _ in range(2)]
        parent_second = first_draw()
    assert parent_first == seeded_draw(entropy(42, 0))
    assert parent_second == seeded_draw(entropy(42, 1))  # the parent goes on as if alone
    for n, child in enumerate(children, start=1):
        child_seed = derive_seed(42, "fork", n)
        assert child == [seeded_draw(entropy(child_seed, k)) for k in (0, 1)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_another_thread_installs_a_hook_can_install_too() -> None:
    held, release = threading.Event(), threading.Event()

    def install_slowly() -> None:
        with _entropy._lock:
            held.set()
            release.wait()

    def install_in_child() -> str:
        signal.alarm(30)  # a child stuck on the parent's lock dies instead of hanging the test
        _entropy.hook_numpy()
        _entropy.hook_torch()
        return "installed"

    thread = threading.Thread(target=install_slowly)
    thread.start()
    held.wait()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            assert in_child(install_in_child) == "installed"
    finally:
        release.set()
        thread.join()


def test_loading_a_snapshot_in_an_entry_takes_no_entropy() -> None:
    state = capture(sources=["numpy"]).state_dict()
    with deterministic(12):
        Snapshot.from_state_dict(state, sources=["numpy"])
        draw = first_draw()
    assert draw == seeded_draw(entropy(12, 0))


def test_loading_owned_generators_in_an_entry_takes_no_entropy() -> None:
    owned = np.random.default_rng(3)
    state = capture(generators=[owned]).state_dict()
    with deterministic(12):
        Snapshot.from_state_dict(state, generators=[owned])
        draw = first_draw()
    assert draw == seeded_draw(entropy(12, 0))


def test_a_private_stream_takes_the_os_entropy_option() -> None:
    stream = private_stream(42, os_entropy=True)
    assert stream.scope.os_entropy
    with stream:
        draw = first_draw()
    assert draw not in {seeded_draw(entropy(42, n)) for n in range(3)}


# -- seedscope run ---------------------------------------------------------------------


AUGMENT = """
    import numpy as np

    def augment(batch):
        rng = np.random.default_rng()  # no seed: a new generator for every batch
        return batch + rng.normal(scale=0.1, size=batch.shape)

    batch = np.zeros(4)
    for step in range(3):
        print(" ".join(f"{value:.17g}" for value in augment(batch)))
"""


def test_an_unseeded_default_rng_for_augmentation_is_reproducible_under_seedscope_run(
    tmp_path: Path,
) -> None:
    write(tmp_path / "augment.py", AUGMENT)
    runs = [seedscope("run", "--seed", "3", "augment.py", cwd=tmp_path) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout
    assert len(set(runs[0].stdout.splitlines())) == 3  # each batch augmented differently
    other_seed = seedscope("run", "--seed", "4", "augment.py", cwd=tmp_path)
    assert other_seed.returncode == 0, other_seed.stderr
    assert other_seed.stdout != runs[0].stdout
    plain = [python("augment.py", cwd=tmp_path, env=environment()) for _ in range(2)]
    assert plain[0].stdout != plain[1].stdout  # under plain python, OS entropy as ever


def test_seedscope_run_prints_what_default_rng_of_the_derived_entropy_prints(
    tmp_path: Path,
) -> None:
    write(tmp_path / "draw.py", "import numpy as np\nprint(repr(np.random.default_rng().random()))")
    result = seedscope("run", "--seed", "3", "draw.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) == seeded_draw(entropy(3, 0))
