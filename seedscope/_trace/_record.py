"""Recording: every aten op torch runs, with exact digests of what it read and wrote.

A ``TorchDispatchMode`` sees each op below autograd, forward and backward
(backward ops run on the thread that calls ``backward()`` on the CPU, and on
the autograd engine's device threads, which inherit the mode, on GPUs). For
each op the recorder writes: its aten name; the ``nn.Module`` running it (from
global forward hooks); the user's source line (the first frame that is not
seedscope's, torch's or the standard library's); digests of its inputs and of
its outputs; for a random op, a digest of its generator's state before it ran.

A digest is 16 bytes of BLAKE2b over a tensor's dtype, shape and bytes, so a
one-ulp difference shows. Each tensor's bytes are hashed once per version
(in-place ops bump ``_version``): outputs when made, inputs seen for the first
time when used, and a cache keyed by the tensor's id (checked with a weak
reference, so a reused id is not mistaken for the old tensor) keeps the rest.
CUDA tensors are hashed on the GPU (see :func:`device_digest`).

Backward ops are reported by the forward line and module that made their
autograd node: each forward op's outputs get their node's metadata tagged on
the next op (a node exists only once the op has returned through autograd).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import random
import sys
import threading
import weakref
from types import CodeType, FrameType
from typing import Any

from .._frames import is_library_file
from . import _format
from ._format import (
    ARGUMENTS,
    BACKWARD,
    FROM_DATA,
    OUTSIDE,
    RANDOM,
    TRACED,
    UNINITIALIZED,
    UNWRITTEN,
    VIEW,
    TraceWriter,
    pack_input,
)

__all__ = ["Recorder", "device_digest", "tensor_digest"]

# Generator states are written at module entries, random ops, tensors made from data,
# and at least this often (when they changed).
_GENERATOR_EVERY = 256
# Ops whose outputs hold whatever was in memory: their bytes are not part of a digest.
_UNINITIALIZED = frozenset(
    {
        "aten::empty",
        "aten::empty_like",
        "aten::empty_strided",
        "aten::empty_permuted",
        "aten::new_empty",
        "aten::new_empty_strided",
        "aten::resize_",
        "aten::resize_as_",
        "aten::_resize_output_",
        "aten::set_",
    }
)
# Ops through which torch.tensor() and friends hand data made in Python to torch.
_FROM_DATA = frozenset({"aten::lift_fresh", "aten::lift_fresh_copy", "aten::lift"})
_SIMPLE = (int, float, bool, str, complex, type(None))


def _digest(*parts: bytes) -> bytes:
    return hashlib.blake2b(b"\0".join(parts), digest_size=16).digest()


def device_digest(tensor: Any, torch: Any) -> bytes:
    """An exact digest computed where ``tensor`` lives (a GPU), moving 16 bytes to the host.

    The bytes are read as 64-bit words ``w[i]`` and summed as ``w[i] * m[i]`` modulo
    2**64 with odd multipliers ``m[i]`` that depend on ``i`` (twice, with two sets
    of multipliers). Integer sums do not depend on the order of the additions, so
    the result is the same however the GPU reduces; a change to any one word
    changes both sums, since an odd multiplier is invertible modulo 2**64. Costs
    a few kernels and one synchronisation per tensor.
    """
    flat = tensor.reshape(-1)
    data = flat.view(torch.uint8) if flat.numel() else flat.new_empty(0, dtype=torch.uint8)
    if data.numel() % 8 == 0 and data.storage_offset() % 8 == 0:
        words = data.view(torch.int64)
    else:
        words = data.to(torch.int64)
    index = torch.arange(words.numel(), device=words.device, dtype=torch.int64)
    first = (words * (index * 6364136223846793005 + 1442695040888963407 | 1)).sum()
    second = ((words ^ index) * (index * -7046029254386353131 + 3 | 1)).sum()
    sums = torch.stack((first, second)).cpu()
    return bytes(sums.numpy().tobytes())


def _header(tensor: Any) -> bytes:
    return f"{tensor.dtype}{tuple(tensor.shape)}{tensor.layout}".encode()


def tensor_digest(tensor: Any, torch: Any) -> bytes:
    """16 bytes that change with any bit of ``tensor``'s value, dtype, shape or layout."""
    header = _header(tensor)
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        return _digest(header, type(tensor).__qualname__.encode())  # a subclass: its type only
    if tensor.is_meta:
        return _digest(header)
    with torch._C._DisableTorchDispatch():
        if tensor.layout != torch.strided:
            parts: tuple[Any, ...]
            if tensor.is_sparse:
                parts = (tensor._indices(), tensor._values())
            else:
                tensor = tensor.to_dense()
                parts = (tensor,)
            return _digest(header, *(tensor_digest(part, torch) for part in parts))
        if tensor.is_quantized:
            scale = repr((tensor.qscheme(), tensor.q_scale(), tensor.q_zero_point()))
            return _digest(header, scale.encode(), tensor_digest(tensor.int_repr(), torch))
        if tensor.is_conj():
            tensor = tensor.resolve_conj()
        if tensor.is_neg():
            tensor = tensor.resolve_neg()
        if not tensor.is_cpu:
            if tensor.is_cuda:
                return _digest(header, device_digest(tensor.contiguous(), torch))
            tensor = tensor.cpu()
        if not tensor.is_contiguous():
            tensor = tensor.contiguous()
        size = tensor.numel() * tensor.element_size()
        hasher = hashlib.blake2b(header, digest_size=16)
        if size:
            hasher.update((ctypes.c_char * size).from_address(tensor.data_ptr()))
        return hasher.digest()


def _simple(value: Any) -> Any:
    """A value's stand-in in the digest of an op's arguments, the same in every run."""
    if isinstance(value, _SIMPLE):
        return value
    if isinstance(value, (list, tuple)):
        return [_simple(item) for item in value]
    text = repr(value)
    return text if " at 0x" not in text else type(value).__qualname__


class _OpInfo:
    __slots__ = ("flags", "name", "out", "skip", "written")

    def __init__(self, func: Any, torch: Any, writer: TraceWriter) -> None:
        schema = func._schema
        name = schema.name
        # The profiler's markers (a DataLoader's, say) hand out handles, not values.
        self.skip = name.startswith("profiler::")
        self.name = writer.string(name)
        flags = 0
        if torch.Tag.nondeterministic_seeded in func.tags:
            flags |= RANDOM
        if name in _FROM_DATA:
            flags |= FROM_DATA
        elif func.is_view:
            flags |= VIEW
        if name in _UNINITIALIZED:
            flags |= UNINITIALIZED
        self.flags = flags
        # Arguments an op writes (in-place, out=): their values after the op are outputs;
        # an out= argument's value before it is not an input.
        self.written: list[tuple[int, str]] = []
        self.out: set[str] = set()
        for position, argument in enumerate(schema.arguments):
            alias = argument.alias_info
            if alias is not None and alias.is_write:
                self.written.append((position, argument.name))
                if getattr(argument, "is_out", argument.kwarg_only):
                    self.out.add(argument.name)


class _Mode:
    """Built on first use: subclassing TorchDispatchMode needs torch imported."""

    made: type | None = None

    @classmethod
    def make(cls, recorder: Recorder) -> Any:
        if cls.made is None:
            from torch.utils._python_dispatch import TorchDispatchMode

            class RecordingMode(TorchDispatchMode):  # type: ignore[misc]
                def __init__(self, recorder: Recorder) -> None:
                    super().__init__()
                    self.recorder = recorder

                def __torch_dispatch__(
                    self,
                    func: Any,
                    types: Any,
                    args: tuple[Any, ...] = (),
                    kwargs: dict[str, Any] | None = None,
                ) -> Any:
                    return self.recorder.op(func, args, kwargs or {})

            cls.made = RecordingMode
        return cls.made(recorder)


class Recorder:
    """Records ops into a :class:`TraceWriter` while started."""

    def __init__(self, writer: TraceWriter) -> None:
        import torch

        self.torch = torch
        self.writer = writer
        self._infos: dict[Any, _OpInfo] = {}
        # id(tensor) -> (weak reference, version, digest, kind, producer, producer location)
        self._known: dict[int, tuple[Any, int, bytes, int, int, int]] = {}
        self._user: dict[CodeType, bool] = {}
        self._lines: dict[tuple[CodeType, int], int] = {}
        self._cwd = os.getcwd()
        self._local = threading.local()
        self._names: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()
        self._pending: list[tuple[Any, int, int]] = []
        self._tag = ("seedscope.trace", id(self))
        self._mode: Any = None
        self._hooks: list[Any] = []
        self._states: dict[str, bytes] = {}
        self._since_states = 0
        self._lock = threading.RLock()
        self.recording = False

    # -- starting and stopping ---------------------------------------------

    def start(self) -> None:
        from torch.nn.modules import module

        self._mode = _Mode.make(self)
        pre = module.register_module_forward_pre_hook(self._enter_module)
        try:
            post = module.register_module_forward_hook(self._leave_module, always_call=True)
        except TypeError:  # torch before 2.2
            post = module.register_module_forward_hook(self._leave_module)
        self._hooks = [pre, post]
        self.recording = True
        self._record_states(self._location(1))
        self._mode.__enter__()

    def stop(self) -> None:
        if not self.recording:
            return
        self.recording = False
        try:
            self._mode.__exit__(None, None, None)
        finally:
            for hook in self._hooks:
                hook.remove()
            self._hooks = []
            self._tag_nodes()
            self._record_states(self._location(1))

    def abandon(self) -> None:
        """In a forked child: stop seeing ops, write nothing."""
        self.recording = False
        with contextlib.suppress(Exception):  # the child goes on untraced either way
            self._mode.__exit__(None, None, None)
        for hook in self._hooks:
            hook.remove()
        self.writer.abandon()

    # -- where an op runs ----------------------------------------------------

    def _location(self, depth: int) -> int:
        frame: FrameType | None = sys._getframe(depth + 1)
        while frame is not None:
            code = frame.f_code
            user = self._user.get(code)
            if user is None:
                user = self._user[code] = not is_library_file(code.co_filename)
            if user:
                key = (code, frame.f_lineno)
                number = self._lines.get(key)
                if number is None:
                    number = self._lines[key] = self.writer.string(
                        f"{self._short(code.co_filename)}:{frame.f_lineno}"
                    )
                return number
            frame = frame.f_back
        return _format.NO_STRING

    def _short(self, filename: str) -> str:
        path = os.path.abspath(filename)
        if path.startswith(self._cwd + os.sep):
            return os.path.relpath(path, self._cwd)
        return filename

    def _stack(self) -> list[tuple[Any, int]]:
        stack: list[tuple[Any, int]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def _module_name(self, root: Any, module: Any) -> str:
        names = self._names.get(root)
        if names is None or id(module) not in names:
            names = {id(m): name for name, m in root.named_modules(remove_duplicate=False)}
            self._names[root] = names
        name = names.get(id(module))
        if name is None:  # not inside the outermost module: called on its own
            return type(module).__name__
        return name or type(root).__name__

    def _enter_module(self, module: Any, args: Any) -> None:
        if not self.recording:
            return
        stack = self._stack()
        root = stack[0][0] if stack else module
        stack.append((module, self.writer.string(self._module_name(root, module))))
        self._record_states(self._location(1))

    def _leave_module(self, module: Any, args: Any, output: Any) -> None:
        stack = self._stack()
        # Pop down to this module: a forward that raised was not always popped (old torch).
        while stack:
            if stack.pop()[0] is module:
                break

    # -- generator states ------------------------------------------------------

    def _generator_states(self) -> dict[str, bytes]:
        # hash() of a tuple of ints is the same in every process (not so for str, bytes
        # or, before Python 3.12, None).
        version, words, gauss = random.getstate()
        states = {
            "random": _digest(
                hash(words).to_bytes(8, "little", signed=True), repr((version, gauss)).encode()
            )
        }
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            state = numpy.random.get_state(legacy=True)
            states["numpy"] = _digest(
                state[1].tobytes(), repr((state[2], state[3], state[4])).encode()
            )
        states["torch"] = tensor_digest(self.torch.default_generator.get_state(), self.torch)
        return states

    def _record_states(self, location: int) -> None:
        self._since_states = 0
        states = self._generator_states()
        if states != self._states:
            self._states = states
            self.writer.generators(location, states)

    def _generator(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        """The state of the generator a random op draws from, before it draws."""
        torch = self.torch
        generator = kwargs.get("generator")
        if generator is None:
            for position, argument in enumerate(func._schema.arguments):
                if argument.name == "generator" and position < len(args):
                    generator = args[position]
        if generator is None:
            device = kwargs.get("device")
            if device is None:
                tensor = next((a for a in args if isinstance(a, torch.Tensor)), None)
                device = tensor.device if tensor is not None else torch.device("cpu")
            device = torch.device(device)
            if device.type == "cuda":
                index = torch.cuda.current_device() if device.index is None else device.index
                generator = torch.cuda.default_generators[index]
            elif device.type == "cpu":
                generator = torch.default_generator
            else:
                return _digest(b"generator of", str(device).encode())
        return tensor_digest(generator.get_state(), torch)

    # -- ops -------------------------------------------------------------------

    def _tag_nodes(self) -> None:
        """Tag the autograd nodes of the last forward op's outputs with its line and module."""
        pending, self._pending = self._pending, []
        for ref, location, module in pending:
            tensor = ref()
            if tensor is not None:
                node = tensor.grad_fn
                if node is not None and self._tag not in node.metadata:
                    node.metadata[self._tag] = (location, module)

    def _input(self, tensor: Any, unwritten: bool) -> bytes:
        known = self._known.get(id(tensor))
        if known is not None and known[0]() is tensor:
            _, version, digest, kind, producer, location = known
            if version != tensor._version:
                # Changed in place through another view of its memory since.
                digest = tensor_digest(tensor, self.torch)
                self._remember(tensor, digest, kind, producer, location)
        else:
            digest = tensor_digest(tensor, self.torch)
            kind, producer, location = OUTSIDE, -1, _format.NO_STRING
            self._remember(tensor, digest, kind, producer, location)
        if unwritten:
            kind = UNWRITTEN
        return pack_input(digest, kind, producer, location)

    def _remember(
        self, tensor: Any, digest: bytes, kind: int, producer: int, location: int
    ) -> None:
        key = id(tensor)
        known = self._known

        def forget(ref: Any, key: int = key) -> None:
            entry = known.get(key)
            if entry is not None and entry[0] is ref:
                del known[key]

        known[key] = (
            weakref.ref(tensor, forget),
            tensor._version,
            digest,
            kind,
            producer,
            location,
        )

    def op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not self.recording:
            return func(*args, **kwargs)
        with self._lock:
            return self._op(func, args, kwargs)

    def _op(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        torch = self.torch
        Tensor = torch.Tensor
        writer = self.writer
        info = self._infos.get(func)
        if info is None:
            info = self._infos[func] = _OpInfo(func, torch, writer)
        if info.skip:
            return func(*args, **kwargs)
        if self._pending:
            self._tag_nodes()
        flags = info.flags
        node = torch._C._current_autograd_node()
        if node is not None:
            flags |= BACKWARD
            location, module = node.metadata.get(self._tag, (_format.NO_STRING,) * 2)
        else:
            location = self._location(3)
            stack = getattr(self._local, "stack", None)
            module = stack[-1][1] if stack else _format.NO_STRING
        self._since_states += 1
        if flags & (RANDOM | FROM_DATA) or self._since_states >= _GENERATOR_EVERY:
            self._record_states(location)
        generator = self._generator(func, args, kwargs) if flags & RANDOM else None

        inputs: list[bytes] = []
        others: list[Any] = []
        grad = False
        unwritten = bool(info.out)
        for value in args:
            if isinstance(value, Tensor):
                inputs.append(self._input(value, False))
                grad = grad or value.requires_grad
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], Tensor):
                for item in value:
                    if isinstance(item, Tensor):
                        inputs.append(self._input(item, False))
                        grad = grad or item.requires_grad
            else:
                others.append(_simple(value))
        for key, value in kwargs.items():
            if isinstance(value, Tensor):
                if not (unwritten and key in info.out):
                    inputs.append(self._input(value, False))
            elif key != "generator":
                others.append((key, _simple(value)))
        if others:
            digest = _digest(repr(others).encode())
            inputs.append(pack_input(digest, ARGUMENTS, -1, _format.NO_STRING))

        result = func(*args, **kwargs)

        index = writer.ops
        outputs: list[bytes] = []
        made: list[Any] = []
        if isinstance(result, Tensor):
            made.append(result)
        elif isinstance(result, (list, tuple)):
            made.extend(r for r in result if isinstance(r, Tensor))
        elif result is not None:
            outputs.append(_digest(repr(_simple(result)).encode()))
        for position, name in info.written:
            value = kwargs[name] if name in kwargs else args[position]
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(item, Tensor) and not any(item is m for m in made):
                    made.append(item)
        kind = UNWRITTEN if flags & UNINITIALIZED else TRACED
        for tensor in made:
            if flags & UNINITIALIZED:
                digest = _digest(_header(tensor), b"uninitialized")
            elif flags & VIEW:
                # Same bytes as the input: a digest of the input's and the view's shape.
                digest = _digest(_header(tensor), *(packed[:16] for packed in inputs))
            else:
                digest = tensor_digest(tensor, torch)
            outputs.append(digest)
            self._remember(tensor, digest, kind, index, location)
        writer.op(flags, info.name, module, location, generator, inputs, outputs)
        if grad and node is None and made and torch.is_grad_enabled():
            self._pending = [(weakref.ref(t), location, module) for t in made]
        return result
