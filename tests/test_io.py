"""Atomic writes: outputs readable by the group (umask modes), no temporaries left by killed writers."""

import os
import signal
import subprocess
import sys

import pytest

from e3hier.io import atomic_path, write_json


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_mode_of_the_umask(tmp_path, umask, mode):
    saved = os.umask(umask)
    try:
        write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(saved)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == mode


def test_temporaries_of_a_killed_writer_are_removed(tmp_path):
    """A writer killed with SIGKILL inside ``atomic_path`` leaves ``.name.*.tmp``; the next write removes it."""
    target = tmp_path / "table.parquet"
    code = (
        f"import os, time\nfrom e3hier.io import atomic_path\nwith atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.write_text('partial')\n    print('writing', flush=True)\n    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    leftovers = list(tmp_path.glob(".table.parquet.*.tmp"))
    assert leftovers and not target.exists()
    with atomic_path(target) as tmp:
        tmp.write_text("done")
    assert target.read_text() == "done" and not list(tmp_path.glob(".table.parquet.*.tmp"))


def test_truncated_outputs_of_an_earlier_run_are_named_with_the_way_out(tmp_path):
    import pandas as pd

    from e3hier.io import read_json, read_table, write_json

    table = tmp_path / "train.parquet"
    pd.DataFrame({"structure": ["a"], "x": [1.0]}).to_parquet(table)
    table.write_bytes(table.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"train.parquet: cannot be read as Parquet .* delete it and rerun"):
        read_table(table)
    summary = tmp_path / "summary.json"
    write_json(summary, {"a": 1})
    summary.write_text(summary.read_text()[:5])
    with pytest.raises(ValueError, match=r"summary.json: cannot be read as JSON .* delete it and rerun"):
        read_json(summary)
    pd.DataFrame({"structure": ["a"]}).to_parquet(table)
    with pytest.raises(ValueError, match=r"columns \['coefficient'\] are missing"):
        read_table(table, ["structure", "coefficient"])


def test_each_write_syncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """A crash of the machine right after a job must not leave an empty or missing output: ``fsync`` of the
    temporary, then the rename, then ``fsync`` of the folder, for every writer (here JSON, TSV, text)."""
    import pandas as pd

    from e3hier import io

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", "folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    io.write_json(tmp_path / "a.json", {"a": 1})
    io.write_tsv(tmp_path / "skipped.tsv", pd.DataFrame({"structure": ["w3_0"]}))
    io.write_text(tmp_path / "README.md", "text\n")
    for name in ("a.json", "skipped.tsv", "README.md"):
        assert [("fsync", "file"), ("replace", name), ("fsync", "folder")] == events[:3]
        del events[:3]
    assert not events
    assert (tmp_path / "skipped.tsv").read_text() == "structure\nw3_0\n"


def test_no_writer_bypasses_the_atomic_writer():
    """Every file the package and the scripts write goes through ``e3hier.io.atomic_path`` (and its fsyncs)."""
    import re

    from conftest import ROOT

    direct = re.compile(r"\.write_text\(|\.write_bytes\(|\.to_csv\(|\.to_parquet\(|open\([^)]*[\"'][wax]")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("e3hier", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line) and "tmp" not in line and "# not an output" not in line
    ]
    assert not offenders, f"write through e3hier.io.atomic_path (or write_text / write_tsv): {offenders}"
