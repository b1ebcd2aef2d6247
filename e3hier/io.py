"""Atomic output writing, provenance and logging shared by the workflow's scripts.

Every writer goes through ``atomic_path``: a temporary file in the destination folder, flushed to disk
(``fsync``), then ``os.replace`` and an ``fsync`` of the folder, so neither an interrupted job nor a crash of
the machine leaves a half-written output (or a rename the file system forgot) behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

#: Packages whose versions are recorded as provenance.
PROVENANCE_PACKAGES = ("e3hier", "pyscf", "numpy", "scipy", "torch", "e3nn", "ase", "pandas", "pyarrow")


def current_umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files an earlier, killed writer of ``path`` left beside it (``.name.*.tmp``).

    Only one job writes a given output, so a leftover is never in use."""
    stale = list(path.parent.glob(f".{path.name}.*.tmp")) if path.parent.is_dir() else []
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The output gets the mode a new file gets under the umask (0644 under umask 022), not ``mkstemp``'s
    private 0600, so colleagues on a cluster can read it; temporaries of a killed earlier writer go first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~current_umask())
    try:
        yield Path(tmp)
        durable_replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


#: ``fsync`` errors of a file system that cannot sync a folder (some network and FUSE file systems): the
#: rename stands, only its durability across a crash is not promised there.
UNSYNCABLE_FOLDER = (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES)


def fsync_path(path, folder: bool = False) -> None:
    """``fsync`` a file, or a folder (its entries: a rename in it); a folder that cannot be synced is skipped."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    except OSError as error:
        if not (folder and error.errno in UNSYNCABLE_FOLDER):
            raise
    finally:
        os.close(fd)


def durable_replace(tmp, path) -> None:
    """Move the finished temporary ``tmp`` onto ``path`` so that it survives a crash of the machine: the data
    reaches the disk before the rename (``fsync`` of the file), the rename after it (``fsync`` of the folder)."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(Path(path).parent, folder=True)


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically and durably (``atomic_path``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_tsv(path, frame, **kwargs) -> None:
    """Write a ``pandas.DataFrame`` as a tab-separated table without its index, atomically and durably;
    ``kwargs`` go to ``DataFrame.to_csv``."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, **kwargs)


def _json_default(value):
    """numpy scalars and arrays → Python values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def to_json(payload) -> str:
    return json.dumps(payload, indent=2, sort_keys=True, default=_json_default)


def write_json(path, payload: dict) -> None:
    """Write ``payload`` as indented, key-sorted JSON, atomically."""
    write_text(path, to_json(payload) + "\n")


#: How to recover from an unreadable output of an earlier run.
RECOVER = "it is probably truncated or corrupted (an interrupted earlier run, a full disk): delete it and rerun"


def read_json(path) -> dict:
    """A JSON file written by ``write_json``; an unreadable one is reported with its path and the way out."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot be read as JSON ({error}); {RECOVER}") from error


def read_table(path, columns=None):
    """A Parquet table as a ``pandas.DataFrame``; an unreadable file is reported with its path and the way
    out, and ``columns`` (if given) must all be there."""
    import pandas as pd  # here: the DFT job writes Parquet without importing pandas

    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as error:
        raise ValueError(f"{path}: cannot be read as Parquet ({error}); {RECOVER}") from error
    missing = [c for c in columns or () if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing (a table of another version or kind?); {RECOVER}")
    return frame


def write_parquet(path, frame, metadata: dict | None = None) -> None:
    """Write ``frame`` (a ``pandas.DataFrame`` or a ``pyarrow.Table``) to Parquet atomically; ``metadata``
    is stored as JSON under the key ``e3hier``."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    if metadata is not None:
        existing = table.schema.metadata or {}
        table = table.replace_schema_metadata({**existing, b"e3hier": to_json(metadata).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet_metadata(path) -> dict:
    """The ``e3hier`` provenance stored by ``write_parquet`` ({} if none)."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"e3hier")
    return json.loads(raw) if raw else {}


def package_versions(packages=PROVENANCE_PACKAGES) -> dict[str, str]:
    """Installed versions of ``packages`` (those not installed are left out)."""
    versions = {}
    for name in packages:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def setup_logging(log_path=None) -> logging.Logger:
    """Log to stderr and, if given, to the rule's log file (so errors reach both the console and the log)."""
    logger = logging.getLogger("e3hier")
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for handler in handlers:
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


@contextlib.contextmanager
def logged_errors(logger: logging.Logger):
    """Log any exception's message (to console and log file) before re-raising it."""
    try:
        yield
    except Exception as err:
        logger.error("%s: %s", type(err).__name__, err)
        raise
