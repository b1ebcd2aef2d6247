"""Running the Snakemake workflow from tests, in a temporary working directory."""

import shutil
import subprocess
from pathlib import Path

import yaml

from e3hier.plan import job_counts, snakemake_command

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "scripts", "report", "envs", "e3hier", "tests/configs")


def copy_workflow(target) -> Path:
    """A private copy of the workflow definition (to edit scripts in tests without touching the repo)."""
    target = Path(target)
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target / "Snakefile"


def planned_jobs(result) -> dict[str, int]:
    """``{rule: count}`` from the "Job stats" table of a ``snakemake -n`` run."""
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    return job_counts(text)


#: The test split's XYZ files of ``tests/configs/tiny-mixed.yaml`` (its glob is relative to the working directory).
TINY_TEST_XYZ = Path("tests") / "data" / "tiny_test_xyz"


def snakemake(
    workdir, *args, configfiles=(), overrides=None, check=True, timeout=900, snakefile=None, mixed_sources=True
):
    """Run the project's workflow with ``workdir`` as working directory; returns the CompletedProcess. The config
    is config.yaml, tests/configs/tiny.yaml and (``mixed_sources``) tests/configs/tiny-mixed.yaml, whose XYZ files
    are staged in ``workdir``, then ``configfiles`` and ``overrides``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    snakefile = Path(snakefile) if snakefile else ROOT / "Snakefile"
    base = snakefile.parent
    files = [str(base / "config.yaml"), str(base / "tests" / "configs" / "tiny.yaml")]
    if mixed_sources:
        if (workdir / TINY_TEST_XYZ).resolve() != (ROOT / TINY_TEST_XYZ).resolve():  # not the checkout itself
            shutil.copytree(ROOT / TINY_TEST_XYZ, workdir / TINY_TEST_XYZ, dirs_exist_ok=True)
        files.append(str(base / "tests" / "configs" / "tiny-mixed.yaml"))
    files += map(str, configfiles)
    if overrides is not None:
        extra = workdir / "override.yaml"
        extra.write_text(yaml.safe_dump(overrides))
        files.append(str(extra))
    cmd = snakemake_command(snakefile, workdir, "--configfile", *files, "--cores", "2", *args)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
    return result
