"""The `dvc` command line, run from Python by the benchmarks that drive DVC experiments.

No pipeline stage imports this module.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from digits.errors import DigitsError


def dvc_executable() -> str:
    """The `dvc` beside this Python (the project's venv) when there is one, else the one on PATH."""
    return shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"


def dvc(*args: str) -> str:
    """Run `dvc ARGS`; its stdout. It waits for the repository lock (`--wait-for-lock`), so a
    user's own `dvc exp show` while a sweep runs delays the sweep instead of failing it.
    Raises DigitsError with the command and DVC's error line when it fails."""
    result = subprocess.run(
        [dvc_executable(), "--wait-for-lock", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        errors = [line for line in lines if line.startswith("ERROR")] or lines
        raise DigitsError(f"`dvc {' '.join(args)}` failed: {errors[-1]}")
    return result.stdout
