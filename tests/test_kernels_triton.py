"""Runs tests/kernels_interpreter_cases.py (every Triton kernel vs its reference, fp32 and fp16)
in a fresh pytest process with the Triton interpreter on: TRITON_INTERPRET=1 only takes effect
when it is set before triton is first imported, and this session has imported it already."""

import os
import subprocess
import sys
from pathlib import Path

CASES = Path(__file__).with_name("kernels_interpreter_cases.py")


def test_triton_kernels_in_the_interpreter_match_the_references():
    env = dict(os.environ, TRITON_INTERPRET="1", LACT_KERNELS="triton")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)],
        cwd=CASES.parents[1], env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]
