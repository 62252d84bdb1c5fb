"""Whatever ``Snapshot.from_state_dict`` accepts, ``restore()`` applies without error.

One plain test per kind of state that used to pass the checks and then fail
in ``restore()`` (half restored), or restore a generator that draws only 0 or
reads outside its buffers. Then property tests: a real state dict, with each
of its parts in turn (then several leaves at once) replaced by values of every
plain type, is either refused with ``ValueError`` or restored without error,
leaving generators that draw more than zeros and finite normal samples.

This module runs in both environments (``WITHOUT_NUMPY_OR_TORCH`` in
conftest): the parts for numpy and torch skip where they are not installed.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import math
import os
import random
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from _fake_devices import FakeCuda
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from seedscope import DeviceMismatchWarning, Snapshot, Source, capture, isolated
from seedscope.sources import default_sources

ENV_VARS = ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")


@pytest.fixture(autouse=True)
def _restore_random_and_environment() -> Iterator[None]:
    # The full environment's fixtures do more; without numpy and torch this is it.
    state = random.getstate()
    environ = {name: os.environ.get(name) for name in ENV_VARS}
    yield
    random.setstate(state)
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def plain(state: dict[str, Any]) -> Any:
    return json.loads(json.dumps(state))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def valid(**kwargs: Any) -> Any:
    return plain(capture(**kwargs).state_dict())


def refused(state: Any, message: str, **kwargs: Any) -> None:
    """``from_state_dict`` raises ``ValueError`` matching ``message``, and nothing changed."""
    before = random.getstate(), {name: os.environ.get(name) for name in ENV_VARS}
    with pytest.raises(ValueError, match=message):
        Snapshot.from_state_dict(state, **kwargs)
    assert (random.getstate(), {name: os.environ.get(name) for name in ENV_VARS}) == before


# -- the environment ------------------------------------------------------------------


def test_environment_value_with_nul_is_refused() -> None:
    state = valid()
    state["sources"]["environ"]["PYTHONHASHSEED"] = "12\x003"
    refused(state, r"part 'environ'.*'PYTHONHASHSEED' is '12\\x003', with a NUL character")


@pytest.mark.skipif(os.name == "nt", reason="Windows keeps the environment as UTF-16 text")
def test_environment_value_the_os_cannot_encode_is_refused() -> None:
    state = valid()
    state["sources"]["environ"]["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8\ud800"  # a lone surrogate
    refused(state, r"part 'environ'.*'CUBLAS_WORKSPACE_CONFIG' is .*position 7 has no")


@pytest.mark.parametrize("name", ["", "A=B", "A\x00B", 7])
def test_environment_variable_names_the_os_refuses_are_refused(name: Any) -> None:
    # The source's own names are fixed, so this is the check alone, for any name.
    from seedscope._plain import check_environment_variable

    with pytest.raises(ValueError, match=r"is not an environment variable name"):
        check_environment_variable(name, "1", "state")
    check_environment_variable("A", "x=y", "state")  # '=' is fine in a value


# -- sources that need no library ---------------------------------------------------------


def test_a_snapshot_without_an_accelerators_part_loads_with_or_without_torch() -> None:
    # Without torch, loading imports nothing for devices (there are none).
    state = valid()
    del state["sources"]["accelerators"]
    expected = random.random()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeviceMismatchWarning)  # where there are GPUs
        Snapshot.from_state_dict(state).restore()
    assert random.random() == expected
    refused(state, r"snapshot part 'accelerators' is missing", same_devices=True)


@pytest.mark.parametrize("name", ["python", "environ"])
def test_null_state_of_a_source_that_needs_no_library_is_refused(name: str) -> None:
    state = valid()
    state["sources"][name] = None
    refused(state, rf"part '{name}' is null, but source '{name}' needs no library")


def test_a_source_without_a_library_whose_state_is_none_round_trips() -> None:
    class Setting(Source):
        """A setting that may be unset: None is its state, not 'not imported'."""

        name = "optional-setting"
        value: Any = None

        def capture(self) -> Any:
            return Setting.value

        def seed(self, seed: int) -> None:
            Setting.value = seed

        def restore(self, state: Any) -> None:
            Setting.value = state

    source = Setting()
    state = valid(sources=[source])
    assert state["sources"]["optional-setting"] is None
    Setting.value = 5
    Snapshot.from_state_dict(state, sources=[source]).restore()
    assert Setting.value is None


# -- MT19937 keys that draw only 0, and other numbers -----------------------------------------


def dead_key(low_bits_of_first_word: int) -> list[int]:
    """The key MT19937 cannot leave: only bits it never feeds back may be set."""
    return [low_bits_of_first_word] + [0] * 623


@pytest.mark.parametrize("first", [0, 0x7FFFFFFF], ids=["all-zero", "low-bits-only"])
def test_all_zero_python_key_is_refused(first: int) -> None:
    state = valid()
    state["sources"]["python"]["key"] = b64(struct.pack("<624I", *dead_key(first)))
    refused(state, r"part 'python'.*'key' is a dead MT19937 key.*every draw from it would be 0")
    # As random.seed makes it: the top bit of the first word alone is a live key.
    state["sources"]["python"]["key"] = b64(struct.pack("<624I", 0x80000000, *[0] * 623))
    Snapshot.from_state_dict(state)


def test_all_zero_key_of_a_random_generator_is_refused() -> None:
    generator = random.Random(3)
    state = valid(sources=[], generators=[generator])
    state["generators"][0]["state"]["key"] = b64(bytes(2496))
    refused(state, r"part 'generators\[0\]'.*dead MT19937 key", sources=[], generators=[generator])


def test_a_float_too_large_for_a_double_is_refused_by_name() -> None:
    state = valid()
    state["sources"]["python"]["gauss_next"] = 10**400
    refused(state, r"part 'python'.*'gauss_next' must be a finite float")


# -- numpy ------------------------------------------------------------------------------------


def test_all_zero_numpy_key_is_refused() -> None:
    pytest.importorskip("numpy")
    state = valid()
    state["sources"]["numpy"]["key"] = b64(bytes(2496))
    refused(state, r"part 'numpy'.*'key' is a dead MT19937 key")


def numpy_generator_state(bit_generator: Any) -> tuple[Any, Any]:
    """The plain state of a Generator on ``bit_generator``, and a Generator to load it into."""
    np = pytest.importorskip("numpy")
    generator = np.random.Generator(bit_generator)
    return valid(sources=[], generators=[generator]), generator


def set_array(state: Any, path: tuple[str, ...], data: bytes) -> None:
    target = state["generators"][0]["state"]
    for key in path:
        target = target[key]
    target["data"] = b64(data)


def test_all_zero_key_of_an_mt19937_generator_is_refused() -> None:
    np = pytest.importorskip("numpy")
    state, generator = numpy_generator_state(np.random.MT19937(1))
    set_array(state, ("state", "key"), bytes(2496))
    refused(
        state, r"'generators\[0\]'.*'key' is a dead MT19937 key", sources=[], generators=[generator]
    )


@pytest.mark.parametrize(
    ("kind", "path", "value", "message"),
    [
        ("MT19937", ("state", "pos"), 625, r"'pos' must be in \[0, 624\], got 625"),
        ("MT19937", ("state", "pos"), -1, r"'pos' must be in \[0, 624\], got -1"),
        ("Philox", ("buffer_pos",), -1, r"'buffer_pos' must be in \[0, 4\], got -1"),
        ("Philox", ("buffer_pos",), 5, r"'buffer_pos' must be in \[0, 4\], got 5"),
        ("PCG64", ("state", "inc"), 2, r"'inc' is 2: a PCG increment must be odd"),
        ("PCG64DXSM", ("state", "inc"), 0, r"'inc' is 0: a PCG increment must be odd"),
        ("PCG64", ("has_uint32",), 2, r"'has_uint32' must be in \[0, 1\], got 2"),
    ],
)
def test_bit_generator_numbers_numpy_takes_but_cannot_use_are_refused(
    kind: str, path: tuple[str, ...], value: int, message: str
) -> None:
    # numpy's setters take any C int for a position, and a draw then reads
    # outside the key or buffer; seeding never makes an even PCG increment, and
    # a flag of 2 is no state numpy makes either.
    np = pytest.importorskip("numpy")
    state, generator = numpy_generator_state(getattr(np.random, kind)(1))
    target = state["generators"][0]["state"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    refused(state, rf"'generators\[0\]'.*{message}", sources=[], generators=[generator])


@pytest.mark.parametrize(
    ("kind", "path", "dtype", "shape"),
    [
        ("MT19937", ("state", "key"), "<u4", [625]),  # numpy would use the first 624
        ("MT19937", ("state", "key"), "<u8", [624]),  # numpy would take each as a u32
        ("Philox", ("state", "counter"), "<u8", [5]),
        ("SFC64", ("state", "state"), "<u8", [2, 2]),
    ],
)
def test_bit_generator_arrays_of_another_type_or_shape_are_refused(
    kind: str, path: tuple[str, ...], dtype: str, shape: list[int]
) -> None:
    np = pytest.importorskip("numpy")
    state, generator = numpy_generator_state(getattr(np.random, kind)(1))
    target = state["generators"][0]["state"]
    for key in path:
        target = target[key]
    values = np.arange(1, math.prod(shape) + 1, dtype=dtype)  # numbers numpy would take
    target.update(dtype=dtype, shape=shape, data=b64(values.tobytes()))
    refused(
        state,
        rf"'generators\[0\]'.*'{path[-1]}' must be an array of",
        sources=[],
        generators=[generator],
    )


# -- torch ----------------------------------------------------------------------------------


def torch_cpu_state(change: Callable[[bytearray], None]) -> str:
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(7)
    torch.rand(3, generator=generator)
    data = bytearray(generator.get_state().numpy().tobytes())
    change(data)
    return b64(bytes(data))


def zero_key(data: bytearray) -> None:
    data[24 : 24 + 624 * 8] = bytes(624 * 8)


def past_the_end(data: bytearray) -> None:
    struct.pack_into("<iiQ", data, 8, 624, 1, 624)  # 'left' 624 and 'next' 624


def nan_normal(data: bytearray) -> None:
    struct.pack_into("<d", data, 5024, math.nan)  # the cached normal sample,
    struct.pack_into("<i", data, 5040, 1)  # marked valid


TORCH_STATES = [
    (zero_key, r"MT19937 key is a dead MT19937 key"),
    (past_the_end, r"'left' 624 and 'next' 624: torch would draw 623 word\(s\) past the end"),
    (nan_normal, r"caches a normal sample that is not a finite float"),
]


@pytest.mark.parametrize(("change", "message"), TORCH_STATES, ids=["zero-key", "past-end", "nan"])
def test_torch_cpu_states_torch_takes_but_cannot_use_are_refused(
    change: Callable[[bytearray], None], message: str
) -> None:
    state = valid()
    state["sources"]["torch"]["state"] = torch_cpu_state(change)
    refused(state, rf"part 'torch'.*{message}")


@pytest.mark.parametrize(("change", "message"), TORCH_STATES, ids=["zero-key", "past-end", "nan"])
def test_torch_generator_states_torch_takes_but_cannot_use_are_refused(
    change: Callable[[bytearray], None], message: str
) -> None:
    torch = pytest.importorskip("torch")
    generator = torch.Generator()
    state = valid(sources=[], generators=[generator])
    state["generators"][0]["state"] = torch_cpu_state(change)
    refused(state, rf"'generators\[0\]'.*{message}", sources=[], generators=[generator])


def test_cuda_precision_bf16_is_refused() -> None:
    pytest.importorskip("torch")
    from seedscope.sources import flags

    if ("cuda", "matmul") not in flags._precision_nodes():
        pytest.skip("this torch has no fp32_precision settings")
    state = valid()
    legacy = len(flags._LEGACY_PRECISION)  # the precision list starts with these
    position = legacy + flags._precision_nodes().index(("cuda", "matmul"))
    state["sources"]["flags"]["precision"][position] = "bf16"
    refused(
        state,
        rf"part 'flags'.*'precision'\[{position}\] is not a valid setting \(fp32_precision of "
        r"cuda matmul\): 'bf16' \(this torch takes 'none', 'ieee', 'tf32'\)",
    )
    # mkldnn takes bf16:
    state["sources"]["flags"]["precision"][position] = "tf32"
    state["sources"]["flags"]["precision"][
        legacy + flags._precision_nodes().index(("mkldnn", "all"))
    ] = "bf16"
    Snapshot.from_state_dict(state)


class Devices:
    """This process's accelerators, or two fake CUDA devices, started or not.

    ``state`` is a state dict captured with the devices started. With
    ``"waiting"`` it is loaded where they have not: ``reset()`` puts fresh
    devices that have not started in place, ``start()`` starts them as the
    first CUDA call would (running what restore queued).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.backend: Any = None
        self.state: Any = None

    @contextlib.contextmanager
    def active(self) -> Iterator[Devices]:
        if self.kind == "here":
            self.state = valid()
            yield self
            return
        pytest.importorskip("torch")
        from seedscope.sources import accelerators

        module = FakeCuda(2, started=True)
        for generator in module.default_generators:
            generator.draw()
        self.backend = accelerators._LazyBackend(module)
        with mock.patch.object(accelerators, "_backends", return_value=(self.backend,)):
            self.state = valid()
            self.reset()
            yield self

    def reset(self) -> None:
        if self.kind == "waiting":
            self.backend.module = FakeCuda(2, started=False)

    def start(self) -> None:
        if self.backend is not None:
            self.backend.module.start()


@pytest.mark.parametrize("kind", ["started", "waiting"])
def test_philox_offset_not_a_multiple_of_4_is_refused(kind: str) -> None:
    with Devices(kind).active() as here:
        state = here.state
        state["sources"]["accelerators"]["fakecuda"]["states"][1] = b64(struct.pack("<QQ", 5, 6))
        refused(
            state,
            r"part 'accelerators'.*'fakecuda' 'states'\[1\] has Philox offset 6, which torch "
            r"refuses: the offset must be a multiple of 4",
        )


def test_philox_offset_of_a_cuda_generator_not_a_multiple_of_4_is_refused() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    generator = torch.Generator(device="cuda")
    state = valid(sources=[], generators=[generator])
    state["generators"][0]["state"] = b64(struct.pack("<QQ", 5, 6))
    refused(state, r"'generators\[0\]'.*Philox offset 6", sources=[], generators=[generator])


# -- properties: any part replaced by anything -----------------------------------------------

# Values of every plain type, and those on the edges of what the states hold.
EDGES = st.sampled_from(
    [-(2**63) - 1, -1, 0, 1, 2, 3, 4, 5, 623, 624, 625, 2**31, 2**32, 2**64, 2**128, 10**400]
)
# Text with what os.environ refuses (NUL, a lone surrogate) among the rest.
TEXT = st.text(
    st.sampled_from(["\x00", "\ud800", "=", "é", ":", "0"]) | st.characters(exclude_categories=()),
    max_size=8,
)
SETTINGS = st.sampled_from(["none", "ieee", "tf32", "bf16", "highest", "high", "medium"])
NAMES = st.sampled_from(["MT19937", "PCG64", "Philox", "<u4", "<u8", "|u1", "random", "torch"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    EDGES,
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    SETTINGS,
    NAMES,
)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT | NAMES, inner, max_size=3),
    max_leaves=6,
)


def positions(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every part of a state dict below the top, with its path: each dict and list, each leaf."""
    if path:
        yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from positions(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from positions(item, (*path, index))


def replaced(state: Any, changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
    new = copy.deepcopy(state)
    for path, value in changes:
        target = new
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return new


def replacements(original: Any) -> st.SearchStrategy[Any]:
    """Anything, and values near ``original``: those that get past its type check."""
    near: list[st.SearchStrategy[Any]] = []
    if type(original) is int:
        near.append(st.integers(original - 4, original + 4) | EDGES)
    if original is None or isinstance(original, str):
        near += [TEXT, SETTINGS | NAMES]
    if isinstance(original, str):
        with contextlib.suppress(ValueError):
            raw = base64.b64decode(original, validate=True)
            if raw:
                # Bytes of the same size, or the original with a few bytes changed,
                # most often near the start (where counters and offsets are).
                near.append(st.binary(min_size=len(raw), max_size=len(raw)).map(b64))
                patch = st.tuples(
                    st.integers(0, min(len(raw) - 1, 64)) | st.integers(0, len(raw) - 1),
                    st.binary(min_size=1, max_size=8),
                )
                near.append(st.lists(patch, min_size=1, max_size=3).map(patcher(raw)))
    return st.one_of(ANY, *near)


def patcher(raw: bytes) -> Callable[[list[tuple[int, bytes]]], str]:
    """A function that writes byte strings into a copy of ``raw``, giving base64."""

    def patched(patches: list[tuple[int, bytes]]) -> str:
        data = bytearray(raw)
        for start, chunk in patches:
            data[start : start + len(chunk)] = chunk[: len(data) - start]
        return b64(bytes(data))

    return patched


def several(state: Any) -> st.SearchStrategy[Any]:
    """``state`` with two or three of its leaves replaced."""
    leaves = [
        (path, value)
        for path, value in positions(state)
        if not isinstance(value, (dict, list)) or not value
    ]

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        chosen = draw(
            st.lists(st.sampled_from(leaves), min_size=2, max_size=3, unique_by=lambda p: p[0])
        )
        return replaced(state, [(path, draw(replacements(value))) for path, value in chosen])

    return mutate()


_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
ONE_POSITION = settings(max_examples=8, **_SETTINGS)
SEVERAL_POSITIONS = settings(max_examples=60, **_SETTINGS)


def every_position(state: Any, check: Callable[[Any], None], within: tuple[Any, ...] = ()) -> None:
    """``check`` ``state`` with each of its parts in turn replaced (those ``within`` a
    part), then several leaves at once.

    Every position is tried even after one fails, so that a failure lists them all.
    """
    failures: list[str] = []
    for path, original in positions(state):
        if path[: len(within)] != within:
            continue
        try:
            one_position(state, path, original, check)
        except Exception as exc:
            failures.append(f"{path!r}: {type(exc).__name__}: {exc}")

    @SEVERAL_POSITIONS
    @given(several(state))
    def many(changed: Any) -> None:
        check(changed)

    try:
        many()
    except Exception as exc:
        failures.append(f"several: {type(exc).__name__}: {exc}")
    assert not failures, "\n\n".join(failures)


def one_position(
    state: Any, path: tuple[Any, ...], original: Any, check: Callable[[Any], None]
) -> None:
    @ONE_POSITION
    @given(replacements(original))
    def one(value: Any) -> None:
        note(f"at {path!r}")
        check(replaced(state, [(path, value)]))

    for value in edges(original):  # each tried first, then hypothesis's own
        one = example(value)(one)
    one()


def edges(original: Any) -> list[Any]:
    """Values of every type, and those next to ``original`` that checks most often miss."""
    values: list[Any] = [None, True, 0, -1, 2**64, 10**400, 0.5, math.nan, "", [], {}]
    values += ["\x00", "1\x002", "\ud800", "bf16", "none", [original], {"": original}]
    if type(original) is int:
        values += [original - 1, original + 1, 624, 625, 2**31, 2**32, 2**128]
    if type(original) is bool:
        values.append(not original)
    if isinstance(original, str):
        with contextlib.suppress(ValueError):
            size = len(base64.b64decode(original, validate=True))
            values += [b64(bytes(size)), b64(bytes(size - 1))] if size else []
    return values


def restores_or_is_refused(state: Any, after: Callable[[], None], **kwargs: Any) -> None:
    """``state`` is refused with ``ValueError``, or restored (then undone) without error,
    leaving generators that draw."""
    refusal: str | None = None
    try:
        with warnings.catch_warnings():
            # Accelerator states for other devices load, with a warning.
            warnings.simplefilter("ignore", DeviceMismatchWarning)
            loaded = Snapshot.from_state_dict(state, **kwargs)
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert refusal.startswith(("snapshot", "not a seedscope", "a snapshot")), refusal
        return
    # Null stands for "its library was not imported"; others have no library.
    for source in default_sources():
        if source.name in loaded.sources and state["sources"][source.name] is None:
            assert source.module is not None, f"null accepted for {source.name!r}"
    with isolated():
        loaded.restore()
        after()


def live(data: bytes, what: str) -> None:
    # 4000 bytes drawn: no live generator gives 1200 zero bytes in a row, and one
    # whose key is dead gives nothing else after its first 624 words.
    assert any(data[-1200:]), f"{what} draws only 0"


def finite(*values: float) -> None:
    assert all(math.isfinite(value) for value in values), values


def draw_from_globals() -> None:
    # Before any normal draw: numpy's polar method never ends on a dead key.
    live(random.getrandbits(32000).to_bytes(4000, "little"), "random")
    finite(random.random(), random.gauss(0.0, 1.0))
    if "numpy.random" in sys.modules:
        np = sys.modules["numpy"]
        live(np.random.bytes(4000), "numpy")
        finite(np.random.rand(), np.random.randn())
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        live(torch.randint(0, 2**16, (2000,), dtype=torch.int32).numpy().tobytes(), "torch")
        finite(*torch.rand(2).tolist(), *torch.randn(2).tolist())
        finite(*torch.randn(2, dtype=torch.float64).tolist())


@pytest.mark.parametrize("kind", ["here", "started", "waiting"])
def test_whatever_a_snapshot_accepts_restores_without_error(kind: str) -> None:
    # numpy and torch imported where installed, so that their parts hold states.
    with contextlib.suppress(ImportError):
        import numpy.random  # noqa: F401
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    with Devices(kind).active() as here:

        def after() -> None:
            here.start()  # what restore queued for devices not started runs now
            draw_from_globals()

        def check(state: Any) -> None:
            here.reset()
            restores_or_is_refused(state, after)

        # With fake devices, only their part one at a time: "here" does the rest.
        every_position(here.state, check, () if kind == "here" else ("sources", "accelerators"))


def own_generators() -> list[Any]:
    generators: list[Any] = [random.Random(1)]
    with contextlib.suppress(ImportError):
        import numpy as np

        bits = [np.random.PCG64, np.random.Philox, np.random.SFC64]
        generators += [np.random.Generator(kind(2)) for kind in [*bits, np.random.MT19937]]
        generators.append(np.random.RandomState(3))
    with contextlib.suppress(ImportError):
        import torch

        generators.append(torch.Generator().manual_seed(4))
    return generators


def draw_from(generator: Any) -> None:
    if isinstance(generator, random.Random):
        live(generator.getrandbits(32000).to_bytes(4000, "little"), "random.Random")
        finite(generator.random(), generator.gauss(0.0, 1.0))
    elif hasattr(generator, "bit_generator"):  # numpy.random.Generator
        live(generator.bytes(4000), type(generator.bit_generator).__name__)
        finite(*generator.random(2), *generator.standard_normal(2))
    elif hasattr(generator, "random_sample"):  # numpy.random.RandomState
        live(generator.bytes(4000), "RandomState")
        finite(*generator.random_sample(2), *generator.randn(2))
    else:
        torch = sys.modules["torch"]
        draws = torch.randint(0, 2**16, (2000,), dtype=torch.int32, generator=generator)
        live(draws.numpy().tobytes(), "torch.Generator")
        finite(*torch.randn(2, generator=generator, dtype=torch.float64).tolist())


def test_whatever_a_snapshot_of_generators_accepts_restores_without_error() -> None:
    base = valid(sources=[], generators=own_generators())
    targets = own_generators()

    def after() -> None:
        for generator in targets:
            draw_from(generator)

    def check(state: Any) -> None:
        restores_or_is_refused(state, after, sources=[], generators=targets)

    every_position(base, check)
