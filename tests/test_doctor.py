"""``seedscope doctor``: the report on this machine, as text and as JSON.

Runs with or without numpy and torch installed (the report says which).
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from pathlib import Path
from typing import Any

import pytest
from _cli import assert_no_seedscope_traceback, environment, run, seedscope

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_NUMPY = importlib.util.find_spec("numpy") is not None

# The doctor as a script, with numpy and torch hidden: fast, and the report of
# an environment without them. ARGV: doctor's options.
WITHOUT_LIBRARIES = """
import sys
sys.modules["numpy"] = sys.modules["torch"] = None
{before}
from seedscope.cli import main
raise SystemExit(main(["doctor", *sys.argv[1:]]))
"""


def write_doctor(tmp_path: Path, before: str = "") -> Path:
    path = tmp_path / "doctor_script.py"
    path.write_text(WITHOUT_LIBRARIES.format(before=before), encoding="utf-8")
    return path


def doctor_json(tmp_path: Path, **env: str) -> dict[str, Any]:
    result = seedscope("doctor", "--json", cwd=tmp_path, env=environment(**env))
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return doctor_json(tmp_path_factory.mktemp("doctor"))


def problem_ids(report: dict[str, Any]) -> list[str]:
    return [problem["id"] for problem in report["problems"]]


def test_json_reports_versions_of_this_environment(report: dict[str, Any]) -> None:
    import seedscope

    assert report["seedscope"] == seedscope.__version__
    assert report["python"]["version"] == platform.python_version()
    assert report["python"]["executable"] == sys.executable
    assert report["numpy"]["installed"] is HAS_NUMPY
    assert report["torch"]["installed"] is HAS_TORCH
    if HAS_TORCH:
        import torch

        assert report["torch"]["version"] == torch.__version__
        assert report["torch"]["cuda"] == torch.version.cuda
        assert isinstance(report["torch"]["threads"], int)
        settings = report["settings"]
        for name in (
            "cudnn.deterministic",
            "cudnn.benchmark",
            "deterministic_algorithms",
            "cuda.matmul.allow_tf32",
            "cudnn.allow_tf32",
            "float32_matmul_precision",
        ):
            assert name in settings
        assert settings["deterministic_algorithms"] is False  # torch's default
        expected_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        cuda = [d for d in report["accelerators"] if d["type"] in ("cuda", "rocm")]
        assert len(cuda) == expected_devices
    else:
        assert report["accelerators"] == []
        assert report["settings"] == {}


def test_random_hash_seed_is_a_problem_with_its_fix(report: dict[str, Any]) -> None:
    assert report["hash_seed"]["fixed"] is False
    assert report["environment"]["PYTHONHASHSEED"]["now"] is None
    problem = report["problems"][problem_ids(report).index("hash-seed")]
    assert "seedscope run" in problem["fix"]
    for problem in report["problems"]:
        assert set(problem) == {"id", "problem", "fix"}
        assert problem["problem"]
        assert problem["fix"]


def test_hash_seed_fixed_at_start_up_is_not_a_problem(tmp_path: Path) -> None:
    report = doctor_json(
        tmp_path,
        PYTHONHASHSEED="17",
        CUBLAS_WORKSPACE_CONFIG=":4096:8",
        SEEDSCOPE_SEED="lots",
    )
    assert report["hash_seed"]["fixed"] is True
    assert report["hash_seed"]["seed"] == 17
    assert "hash-seed" not in problem_ids(report)
    assert report["environment"]["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert "cublas-workspace" not in problem_ids(report)
    assert "seedscope-seed" in problem_ids(report)  # SEEDSCOPE_SEED is not a seed


def test_hash_seed_set_at_run_time_does_not_count(tmp_path: Path) -> None:
    script = write_doctor(tmp_path, before="import os; os.environ['PYTHONHASHSEED'] = '0'")
    result = run(sys.executable, script, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["hash_seed"]["fixed"] is False
    assert report["environment"]["PYTHONHASHSEED"]["now"] == "0"
    assert "hash-seed" in problem_ids(report)
    # Without numpy and torch the report says so, and has nothing on torch's settings.
    assert report["numpy"] == report["torch"] == {"installed": False}
    assert (report["accelerators"], report["settings"]) == ([], {})
    assert problem_ids(report) == ["hash-seed"]


def test_under_seedscope_run_the_hash_seed_is_fixed(tmp_path: Path) -> None:
    script = write_doctor(tmp_path)
    result = seedscope("run", "--seed", "3", script, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["hash_seed"]["fixed"], report["hash_seed"]["seed"]) == (True, 3)
    assert report["environment"]["SEEDSCOPE_SEED"] == "3"
    assert report["problems"] == []
    text = seedscope("run", "--seed", "3", script, cwd=tmp_path).stdout
    assert "fixed at start-up: PYTHONHASHSEED=3" in text
    assert "Nothing found here that would break reproducibility." in text


def test_text_report(tmp_path: Path, report: dict[str, Any]) -> None:
    result = seedscope("doctor", cwd=tmp_path)
    assert result.returncode == 0
    text = result.stdout
    for heading in ("Versions", "Accelerators", "Hash seed of this interpreter", "Environment"):
        assert f"\n{heading}\n" in text
    assert platform.python_version() in text
    assert "random: not fixed at start-up" in text
    assert f"What would break reproducibility ({len(report['problems'])})" in text
    for number, problem in enumerate(report["problems"], start=1):
        assert f"  {number}. {problem['problem']}\n     fix: {problem['fix']}" in text
    if HAS_TORCH:
        assert "deterministic_algorithms" in text


# torch 2.13's settings as the doctor reports them: the rendering is tested on
# this input, with and without a GPU in the report, wherever the tests run.
SETTINGS = {
    "cudnn.deterministic": False,
    "cudnn.benchmark": False,
    "deterministic_algorithms": False,
    "deterministic_algorithms_warn_only": False,
    "fill_uninitialized_memory": True,
    "cuda.matmul.allow_tf32": False,
    "cudnn.allow_tf32": True,
    "float32_matmul_precision": "highest",
    "fp32_precision.generic.all": "none",
    "fp32_precision.cuda.all": "none",
    "fp32_precision.cuda.matmul": "none",
    "fp32_precision.cuda.conv": "tf32",
    "fp32_precision.cuda.rnn": "tf32",
    "fp32_precision.mkldnn.all": "none",
    "fp32_precision.mkldnn.matmul": "none",
    "fp32_precision.mkldnn.conv": "none",
    "fp32_precision.mkldnn.rnn": "none",
}
CUDA_ONLY = [
    name for name in SETTINGS if name.startswith(("cudnn.", "cuda.", "fp32_precision.cuda."))
]
EVERYWHERE = [name for name in SETTINGS if name not in CUDA_ONLY]
FOLDED = "cuDNN and CUDA settings"


def settings_rows(text: str) -> list[str]:
    """The names in the text report's torch settings section, in order."""
    section = text.split("torch settings (this process's defaults)\n", 1)[1].split("\n\n", 1)[0]
    return [line[2:38].rstrip() for line in section.splitlines()]


def with_devices(report: dict[str, Any], *types: str) -> dict[str, Any]:
    devices = [
        {"type": kind, "index": 0, "name": f"a {kind} device", "capability": None} for kind in types
    ]
    return {**report, "accelerators": devices, "settings": dict(SETTINGS)}


def test_without_a_cuda_gpu_the_cuda_only_settings_fold_into_one_line(
    report: dict[str, Any],
) -> None:
    from seedscope._doctor import render_text

    for types in ((), ("mps",), ("xpu",)):
        rows = settings_rows(render_text(with_devices(report, *types)))
        assert rows == [*EVERYWHERE, f"{FOLDED} ({len(CUDA_ONLY)})"], types
    text = render_text(with_devices(report))
    assert "not shown: torch sees no CUDA or ROCm GPU (--json lists them)" in text


def test_with_a_cuda_or_rocm_gpu_every_setting_has_its_row(report: dict[str, Any]) -> None:
    from seedscope._doctor import render_text

    for types in (("cuda",), ("rocm",), ("mps", "cuda")):
        assert settings_rows(render_text(with_devices(report, *types))) == list(SETTINGS)


@pytest.mark.skipif(not HAS_TORCH, reason="torch's settings are reported only with torch")
def test_this_machine_shows_cuda_settings_only_with_a_cuda_gpu(
    tmp_path: Path, report: dict[str, Any]
) -> None:
    text = seedscope("doctor", cwd=tmp_path).stdout
    rows = settings_rows(text)
    cuda_only = [name for name in report["settings"] if name.startswith(("cudnn.", "cuda."))]
    assert cuda_only  # the JSON report lists them all, GPU or not
    if any(device["type"] in ("cuda", "rocm") for device in report["accelerators"]):
        assert rows == list(report["settings"])
    else:
        assert not set(cuda_only) & set(rows)
        assert "deterministic_algorithms" in rows
        assert rows[-1].startswith(FOLDED)


def test_bad_options_and_a_closed_pipe(tmp_path: Path) -> None:
    result = seedscope("doctor", "--yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --yaml" in result.stderr
    assert_no_seedscope_traceback(result)
    # A reader that stops early (`seedscope doctor | head -1`) is not an error.
    import subprocess

    with subprocess.Popen(
        [sys.executable, write_doctor(tmp_path), "--json"],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:
        assert process.stdout is not None
        process.stdout.close()
        _, stderr = process.communicate(timeout=60)
    assert b"Traceback" not in stderr
