"""Where and with what a result was computed: versions, git commit, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from benchmark.results import EnvironmentRef

RECORDED_PACKAGES = (
    "mvtec-caption-bench", "torch", "torchvision", "anomalib", "diffusers", "transformers", "datasets",
    "torchmetrics", "torch-fidelity", "sentence-transformers", "numpy", "pillow", "scikit-learn", "pydantic",
)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def git_commit() -> str | None:
    """The commit of the checkout the code runs from (None outside a git checkout); '+dirty' if modified."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@lru_cache(maxsize=4)
def collect_environment(device: str) -> EnvironmentRef:
    gpu = None
    if device.startswith("cuda"):
        import torch

        gpu = torch.cuda.get_device_name(torch.device(device))
    return EnvironmentRef(
        package_version=_version("mvtec-caption-bench"),
        git_commit=git_commit(),
        python=sys.version.split()[0],
        platform=platform.platform(),
        cpu=_cpu_model(),
        cpu_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0),
        device=device,
        gpu=gpu,
        packages={name: _version(name) for name in RECORDED_PACKAGES},
    )
