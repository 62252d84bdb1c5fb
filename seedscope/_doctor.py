"""``seedscope doctor``: what affects reproducibility here, and what would break it.

The report is plain data (what ``--json`` prints). It reads settings and never
changes them; looking at CUDA devices may start CUDA in this process, which
is why this lives in a command of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
from typing import Any

from . import __version__
from ._hashseed import VARIABLE as HASH_SEED
from ._hashseed import startup_environ, startup_hash_seed
from ._seed import SEED_ENV_VAR, seed_from_environment
from .sources.environ import (
    _CUBLAS_DETERMINISTIC_VALUES,
    CUBLAS_CONFIG,
    CUBLAS_DETERMINISTIC,
    cublas_config_needed,
)

__all__ = ["collect", "render_text"]

Report = dict[str, Any]


def _version_of(name: str) -> dict[str, Any]:
    if importlib.util.find_spec(name) is None:
        return {"installed": False}
    try:
        module = __import__(name)
    except Exception as exc:  # installed but broken: say so rather than fail
        return {"installed": True, "error": f"{type(exc).__name__}: {exc}"}
    return {"installed": True, "version": str(getattr(module, "__version__", "unknown"))}


def _safely(getter: Any) -> Any:
    try:
        return getter()
    except Exception as exc:
        return f"unreadable ({type(exc).__name__})"


def _torch_details(torch: Any) -> dict[str, Any]:
    cudnn = torch.backends.cudnn
    details: dict[str, Any] = {
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "cudnn": _safely(lambda: cudnn.version() if cudnn.is_available() else None),
        "threads": torch.get_num_threads(),
    }
    return details


def _accelerators(torch: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if _safely(torch.cuda.is_available) is True:
        kind = "rocm" if getattr(torch.version, "hip", None) else "cuda"
        for index in range(torch.cuda.device_count()):
            capability = _safely(lambda i=index: torch.cuda.get_device_capability(i))
            if isinstance(capability, tuple):
                capability = ".".join(str(part) for part in capability)
            found.append(
                {
                    "type": kind,
                    "index": index,
                    "name": _safely(lambda i=index: torch.cuda.get_device_name(i)),
                    "capability": capability,
                }
            )
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and _safely(xpu.is_available) is True:
        for index in range(xpu.device_count()):
            name = _safely(lambda i=index: xpu.get_device_name(i))
            found.append({"type": "xpu", "index": index, "name": name})
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and _safely(mps.is_available) is True:
        found.append({"type": "mps", "index": 0, "name": "Apple MPS"})
    return found


_CUDA_TYPES = ("cuda", "rocm")
# Settings that change only what CUDA and ROCm devices compute. The others
# (deterministic algorithms, uninitialized memory, the matmul precision, and
# oneDNN's "mkldnn" precisions, which CPUs use) apply everywhere.
_CUDA_ONLY_PREFIXES = ("cudnn.", "cuda.", "fp32_precision.cuda.")


def _cuda_devices(report: Report) -> list[dict[str, Any]]:
    return [device for device in report["accelerators"] if device["type"] in _CUDA_TYPES]


def _settings(torch: Any) -> dict[str, Any]:
    importlib.import_module("torch.utils.deterministic")  # fill_uninitialized_memory

    settings: dict[str, Any] = {
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_algorithms_warn_only": (
            torch.is_deterministic_algorithms_warn_only_enabled()
        ),
        "fill_uninitialized_memory": _safely(
            lambda: torch.utils.deterministic.fill_uninitialized_memory
        ),
        "cuda.matmul.allow_tf32": _safely(lambda: torch.backends.cuda.matmul.allow_tf32),
        "cudnn.allow_tf32": _safely(lambda: torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": _safely(torch.get_float32_matmul_precision),
    }
    getter = getattr(torch._C, "_get_fp32_precision_getter", None)
    if getter is not None:  # torch >= 2.9: per-backend, per-operation TF32 choices
        for backend in ("generic", "cuda", "mkldnn"):
            for op in ("all", "matmul", "conv", "rnn"):
                if backend == "generic" and op != "all":
                    continue
                try:
                    value = getter(backend, op)
                except (RuntimeError, ValueError):
                    continue
                settings[f"fp32_precision.{backend}.{op}"] = value
    return settings


def _problems(report: Report) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []

    def add(key: str, problem: str, fix: str) -> None:
        problems.append({"id": key, "problem": problem, "fix": fix})

    hash_seed = report["hash_seed"]
    if hash_seed["fixed"] is not True:
        state = "was not fixed" if hash_seed["fixed"] is False else "may not have been fixed"
        add(
            "hash-seed",
            f"This interpreter's hash seed {state} at start-up ({hash_seed['how']}): str and "
            "bytes hashes, and with them the iteration order of sets of strings (and of "
            "anything built from one), change from run to run.",
            "Start programs with `seedscope run script.py` (or `PYTHONHASHSEED=0 python "
            "script.py`). Setting PYTHONHASHSEED in os.environ at run time changes nothing "
            "in the running interpreter.",
        )
    environment = report["environment"]
    if environment.get("seed_error"):
        add(
            "seedscope-seed",
            f"{environment['seed_error']}: deterministic() without a seed will raise.",
            f"Set {SEED_ENV_VAR} to an int from 0 to 2**32 - 1, or unset it.",
        )
    torch = report["torch"]
    if not torch.get("version"):
        return problems
    settings = report["settings"]
    accelerators = report["accelerators"]
    cuda_devices = _cuda_devices(report)
    if cuda_devices and torch.get("cudnn"):
        if settings["cudnn.benchmark"]:
            add(
                "cudnn-benchmark",
                "cuDNN benchmarking is on: it times several convolution algorithms and may "
                "pick a different one in each run.",
                "Run inside deterministic(seed), which turns it off, or set "
                "torch.backends.cudnn.benchmark = False.",
            )
        if not settings["cudnn.deterministic"]:
            add(
                "cudnn-deterministic",
                "cuDNN may choose nondeterministic convolution algorithms "
                "(torch.backends.cudnn.deterministic is False).",
                "Run inside deterministic(seed), which sets it to True.",
            )
    if accelerators and not settings["deterministic_algorithms"]:
        add(
            "deterministic-algorithms",
            "Deterministic algorithms are off: operations such as index_add_, scatter_add_ "
            "and some backward passes use atomic additions on the GPU, whose order (and so "
            "whose floating-point result) changes from run to run.",
            "Use deterministic(seed, strict=True) or `seedscope run --strict` "
            "(torch.use_deterministic_algorithms(True)).",
        )
    cublas = environment[CUBLAS_CONFIG]
    if (
        cuda_devices
        and cublas_config_needed(torch.get("cuda"))
        and cublas not in _CUBLAS_DETERMINISTIC_VALUES
    ):
        add(
            "cublas-workspace",
            f"{CUBLAS_CONFIG} is {'unset' if cublas is None else repr(cublas)}: with CUDA "
            "10.2 or later, cuBLAS picks its workspaces nondeterministically, and "
            "deterministic algorithms raise for cuBLAS operations.",
            f"Start programs with `seedscope run --strict`, or set "
            f"{CUBLAS_CONFIG}={CUBLAS_DETERMINISTIC} before CUDA starts.",
        )
    tf32 = [
        name
        for name in ("cuda.matmul.allow_tf32", "cudnn.allow_tf32")
        if settings.get(name) is True
    ]
    if cuda_devices and tf32:
        add(
            "tf32",
            f"TF32 is allowed ({', '.join(tf32)}): on GPUs that have it, float32 matrix "
            "products and convolutions run with 10-bit mantissas, so results differ between "
            "GPU generations and from the CPU.",
            "Use deterministic(seed, strict=True), which turns TF32 off, or set "
            "torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 to "
            "False.",
        )
    precision = settings.get("float32_matmul_precision")
    if precision in ("high", "medium"):
        add(
            "matmul-precision",
            f"torch.get_float32_matmul_precision() is {precision!r}: float32 matrix "
            "products may use TF32 or bfloat16 internally, so results depend on the hardware.",
            "Use deterministic(seed, strict=True), or "
            "torch.set_float32_matmul_precision('highest').",
        )
    return problems


def collect() -> Report:
    """Everything the report shows, as plain data."""
    at_start = startup_environ()
    hash_seed = startup_hash_seed()
    seed_error = None
    try:
        seed_from_environment()
    except ValueError as exc:
        seed_error = str(exc)
    report: Report = {
        "seedscope": __version__,
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
            "hash_algorithm": sys.hash_info.algorithm,
        },
        "hash_seed": {"fixed": hash_seed.fixed, "seed": hash_seed.seed, "how": hash_seed.how},
        "environment": {
            HASH_SEED: {
                "at_startup": None if at_start is None else at_start.get(HASH_SEED),
                "startup_environment_readable": at_start is not None,
                "now": os.environ.get(HASH_SEED),
            },
            CUBLAS_CONFIG: os.environ.get(CUBLAS_CONFIG),
            SEED_ENV_VAR: os.environ.get(SEED_ENV_VAR),
            "seed_error": seed_error,
        },
        "numpy": _version_of("numpy"),
        "torch": _version_of("torch"),
        "accelerators": [],
        "settings": {},
    }
    torch = sys.modules.get("torch") if report["torch"].get("version") else None
    if torch is not None:
        report["torch"].update(_torch_details(torch))
        report["accelerators"] = _accelerators(torch)
        report["settings"] = _settings(torch)
    report["problems"] = _problems(report)
    return report


def _yes_no(value: Any) -> str:
    if value is None:
        return "unset"
    return str(value)


def render_text(report: Report) -> str:
    """The report as text for a terminal."""
    lines: list[str] = ["seedscope doctor: what affects reproducibility here", ""]

    def row(name: str, value: Any) -> None:
        lines.append(f"  {name:<36} {value}")

    python = report["python"]
    lines.append("Versions")
    row("seedscope", report["seedscope"])
    row("Python", f"{python['version']} ({python['implementation']}, {python['executable']})")
    row("platform", python["platform"])
    for name in ("numpy", "torch"):
        info = report[name]
        row(name, info.get("version") or info.get("error") or "not installed")
    torch = report["torch"]
    if torch.get("version"):
        row("CUDA (torch build)", torch["cuda"] or "none")
        if torch.get("hip"):
            row("ROCm/HIP (torch build)", torch["hip"])
        row("cuDNN", torch["cudnn"] or "none")
        row("CPU threads (torch)", torch["threads"])
    lines.append("")
    lines.append("Accelerators")
    if not torch.get("version"):
        lines.append("  unknown: torch is not installed")
    elif not report["accelerators"]:
        lines.append("  none: torch sees no CUDA, ROCm, XPU or MPS device")
    for device in report["accelerators"]:
        capability = device.get("capability")
        capability = f", compute capability {capability}" if capability else ""
        lines.append(f"  {device['type']}:{device['index']}  {device['name']}{capability}")
    lines.append("")
    lines.append("Hash seed of this interpreter")
    hash_seed = report["hash_seed"]
    if hash_seed["fixed"]:
        state = f"fixed at start-up: PYTHONHASHSEED={hash_seed['seed']}"
    elif hash_seed["fixed"] is False:
        state = "random: not fixed at start-up"
    else:
        state = "unknown"
    row("hash seed", state)
    row("how this was found", hash_seed["how"])
    environment = report["environment"]
    lines.append("")
    lines.append("Environment")
    hash_env = environment[HASH_SEED]
    if hash_env["startup_environment_readable"]:
        row("PYTHONHASHSEED at start-up", _yes_no(hash_env["at_startup"]))
    row("PYTHONHASHSEED now", _yes_no(hash_env["now"]))
    row(CUBLAS_CONFIG, _yes_no(environment[CUBLAS_CONFIG]))
    row(SEED_ENV_VAR, _yes_no(environment[SEED_ENV_VAR]))
    if report["settings"]:
        lines.append("")
        lines.append("torch settings (this process's defaults)")
        show_cuda = bool(_cuda_devices(report))
        folded = 0
        for name, value in report["settings"].items():
            if show_cuda or not name.startswith(_CUDA_ONLY_PREFIXES):
                row(name, value)
            else:
                folded += 1
        if folded:
            # Rows about GPUs this machine does not have would only bury the others.
            row(
                f"cuDNN and CUDA settings ({folded})",
                "not shown: torch sees no CUDA or ROCm GPU (--json lists them)",
            )
    lines.append("")
    problems = report["problems"]
    if not problems:
        lines.append("Nothing found here that would break reproducibility.")
    else:
        lines.append(f"What would break reproducibility ({len(problems)})")
        for number, problem in enumerate(problems, start=1):
            lines.append(f"  {number}. {problem['problem']}")
            lines.append(f"     fix: {problem['fix']}")
    return "\n".join(lines) + "\n"
