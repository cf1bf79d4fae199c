"""bench/gpu_check.py stays runnable where there is no GPU: its code runs at toy sizes on the CPU,
and without CUDA it says so rather than failing or pretending."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def test_smoke_run_measures_with_the_same_code_at_toy_sizes(tmp_path):
    subprocess.run([sys.executable, str(SCRIPT), "--output", str(tmp_path), "--smoke"], check=True, timeout=300,
                   capture_output=True)
    report = json.loads((tmp_path / "gpu.json").read_text())
    (row,) = report["timings"]
    assert row["model"] == "MobileNetDenseASPP" and row["size"] == [32, 64] and row["engine_images_per_s"] > 0
    assert 0 < row["engine_share"] and row["compile"] == "none"
    assert "| MobileNetDenseASPP | 32x64 | 1 | fp32 | none |" in (tmp_path / "gpu.md").read_text()
    assert report["goals"]["DenseASPP161"]["met"] is False  # nothing at 1024x2048 fp16 was measured


def test_without_cuda_it_says_so_and_measures_nothing(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the full check: make gpu-check")
    subprocess.run([sys.executable, str(SCRIPT), "--output", str(tmp_path)], check=True, timeout=120, capture_output=True)
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["cuda"] is False and report["timings"] == []
    assert report["skipped"] == ["every GPU measurement: no CUDA device"]
    assert "CUDA: not available" in (tmp_path / "gpu.md").read_text()
