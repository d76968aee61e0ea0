"""Set up nnsight in a throwaway environment and run ``nnsight_worker`` there.

nnsight is not an rshift dependency, so it goes into its own virtual
environment, ``benchmarks/.nnsight-venv``. A ``.pth`` file puts the main
environment's site-packages on that environment's path, so it reuses the
installed torch and transformers, and pip installs only what is missing.
Before installing, ``pip install --dry-run --report`` lists what pip would
install. If that list contains torch, the setup stops and the benchmark
records why, because the numbers must come from the project's own torch.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import torch

from benchmarks.timing import log

NNSIGHT_REQUIREMENT = "nnsight==0.8.1"
VENV_DIR = Path(__file__).resolve().parent / ".nnsight-venv"
REPO_ROOT = Path(__file__).resolve().parent.parent
PIP_TIMEOUT_S = 900


class SetupFailed(RuntimeError):
    """nnsight could not be set up. The message gives the reason."""


def venv_python(venv: Path = VENV_DIR) -> Path:
    folder = "Scripts" if sys.platform == "win32" else "bin"
    return venv / folder / ("python.exe" if sys.platform == "win32" else "python")


def _run(command: list[str], timeout: int = PIP_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def _tail(completed: subprocess.CompletedProcess) -> str:
    lines = (completed.stderr or completed.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit code {completed.returncode}"


def installed_versions(python: Path) -> dict[str, str] | None:
    """Return the nnsight and torch versions that ``python`` imports, or None if either fails."""
    probe = (
        "import json, nnsight, torch; print(json.dumps([nnsight.__version__, torch.__version__]))"
    )
    completed = _run([str(python), "-c", probe], timeout=300)
    if completed.returncode != 0:
        return None
    nnsight_version, torch_version = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"nnsight": nnsight_version, "torch": torch_version}


def prepare(install: bool) -> Path:
    """Return the python of a working nnsight environment, creating it if allowed.

    Raises:
        SetupFailed: when it is missing and ``install`` is False, or setting it up fails.
    """
    python = venv_python()
    versions = installed_versions(python) if python.exists() else None
    if versions and versions["torch"] == torch.__version__:
        return python
    if not install:
        raise SetupFailed(
            f"nnsight is not set up in {VENV_DIR}. Run `python -m benchmarks --setup-nnsight`, "
            "or leave out --no-install"
        )
    shutil.rmtree(VENV_DIR, ignore_errors=True)
    try:
        _create_venv()
        _check_dry_run(python)
        log(f"[nnsight] installing {NNSIGHT_REQUIREMENT} into {VENV_DIR}")
        completed = _run([str(python), "-m", "pip", "install", "--quiet", NNSIGHT_REQUIREMENT])
        if completed.returncode != 0:
            raise SetupFailed(f"pip install {NNSIGHT_REQUIREMENT} failed: {_tail(completed)}")
        versions = installed_versions(python)
        if versions is None or versions["torch"] != torch.__version__:
            raise SetupFailed(
                f"after installing, the environment imports {versions}, "
                f"not torch {torch.__version__}"
            )
    except (SetupFailed, subprocess.TimeoutExpired, OSError):
        shutil.rmtree(VENV_DIR, ignore_errors=True)
        raise
    return python


def _create_venv() -> None:
    log(f"[nnsight] creating {VENV_DIR}")
    completed = _run([sys.executable, "-m", "venv", str(VENV_DIR)], timeout=300)
    if completed.returncode != 0:
        raise SetupFailed(f"python -m venv failed: {_tail(completed)}")
    python = venv_python()
    where = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    site_packages = Path(where.stdout.strip())
    (site_packages / "rshift-main-environment.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8"
    )


def _check_dry_run(python: Path) -> None:
    """Raise SetupFailed unless pip would install nnsight without touching torch."""
    with tempfile.TemporaryDirectory() as folder:
        report_path = Path(folder) / "report.json"
        command = [str(python), "-m", "pip", "install", "--dry-run", "--quiet"]
        completed = _run([*command, "--report", str(report_path), NNSIGHT_REQUIREMENT])
        if completed.returncode != 0 or not report_path.exists():
            raise SetupFailed(f"pip could not resolve {NNSIGHT_REQUIREMENT}: {_tail(completed)}")
        report = json.loads(report_path.read_text(encoding="utf-8"))
    planned = {
        item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]
    }
    log(
        f"[nnsight] pip would install: {', '.join(f'{k}=={v}' for k, v in sorted(planned.items()))}"
    )
    if "torch" in planned:
        raise SetupFailed(
            f"installing {NNSIGHT_REQUIREMENT} would bring torch {planned['torch']}, "
            f"but the benchmark must keep torch {torch.__version__}"
        )


def run_nnsight(tokens: int, repeats: int, warmup: int, install: bool) -> dict[str, object]:
    """Return the worker's measurements, or a record with status 'skipped' and the reason."""
    try:
        python = prepare(install)
    except (SetupFailed, subprocess.TimeoutExpired, OSError) as error:
        log(f"[nnsight] skipped: {error}")
        return {"status": "skipped", "reason": str(error)}

    command = [str(python), "-m", "benchmarks.nnsight_worker", "--tokens", str(tokens)]
    command += ["--repeats", str(repeats), "--warmup", str(warmup)]
    command += ["--threads", str(torch.get_num_threads())]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, timeout=3600, check=False
    )
    if completed.returncode != 0:
        reason = f"the nnsight worker failed with exit code {completed.returncode}"
        log(f"[nnsight] {reason}")
        return {"status": "failed", "reason": reason}
    return json.loads(completed.stdout.strip().splitlines()[-1])
