"""Running the Snakemake workflow from tests, in a temporary working directory."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def snakemake(workdir, *args, configfiles=(), overrides=None, check=True, timeout=900):
    """Run the project's workflow with ``workdir`` as working directory; returns the CompletedProcess."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    files = [str(ROOT / "config.yaml"), str(TINY), *map(str, configfiles)]
    if overrides is not None:
        extra = workdir / "override.yaml"
        extra.write_text(yaml.safe_dump(overrides))
        files.append(str(extra))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", *files, "--cores", "2", *args]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result
