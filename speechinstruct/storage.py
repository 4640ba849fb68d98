"""Paths as URIs: local paths, ``gs://…``, ``s3://…`` (any scheme Beam's ``FileSystems`` knows).

The one place the project touches storage: the builder's jobs, ``train-t2u`` and
``eval-speech`` (Beam's ``FileSystems`` used as a library: nothing here builds a pipeline,
so the rooms without Beam may use it). Settings come from the standard environment
(``AWS_*`` incl. ``AWS_ENDPOINT_URL``, ``GOOGLE_APPLICATION_CREDENTIALS``,
``STORAGE_EMULATOR_HOST``) and, for a job, from Beam's options (``--s3_endpoint_url`` …),
which win when both are given (``configure``). Object stores cannot rename a folder, so a
whole output is written under a staging prefix and committed with a marker written last
(``commit``); consumers refuse a folder without it (``require_complete``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import tempfile
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from schemas.outputs import MARKER, require_finished

STAGING_SUFFIX = ".partial"
CACHE_ENV = "SPEECHGPT_CACHE"  # where workers keep local copies of remote model files


def is_remote(path: str) -> bool:
    """Whether ``path`` names an object store (``gs://``, ``s3://`` …), not a local file."""
    scheme = FileSystems.get_scheme(path)
    return scheme not in (None, "file")


def normalize(path: str) -> str:
    """A local path made absolute (a job's workers may run elsewhere); URIs as given."""
    path = str(path)
    if is_remote(path):
        scheme, rest = path.split("://", 1)
        return f"{scheme}://{posixpath.normpath(rest)}" if rest else path
    return os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    return FileSystems.join(str(base), *parts) if parts else str(base)


def name(path: str) -> str:
    return posixpath.basename(str(path).rstrip("/"))


def parent(path: str) -> str:
    return FileSystems.split(str(path).rstrip("/"))[0]


def configure(options) -> None:
    """Let ``FileSystems`` in this process use a job's options (``--s3_endpoint_url`` …)."""
    FileSystems.set_options(options)


def exists(path: str) -> bool:
    return FileSystems.exists(str(path))


def match(pattern: str, limit: int | None = None) -> list[str]:
    """Paths matching a glob (``*`` stays within a folder, ``**`` crosses), sorted."""
    result = FileSystems.match([str(pattern)], limits=[limit] if limit else None)[0]
    return sorted(m.path for m in result.metadata_list)


def children(folder: str, limit: int = 200) -> list[str]:
    """Names directly under ``folder`` (files and folders; on an object store, from the first
    ``limit`` objects below it), sorted: for error messages."""
    if not is_remote(folder):
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    prefix = folder.rstrip("/") + "/"
    return sorted({p[len(prefix) :].split("/")[0] for p in match(prefix + "**", limit)})


def files_under(folder: str) -> list[str]:
    """Every file below ``folder``, sorted."""
    if not is_remote(folder):
        return sorted(str(p) for p in _walk(folder))
    return match(join(folder, "**"))


def _walk(folder: str):
    for dirpath, _, filenames in os.walk(folder):
        for f in filenames:
            yield os.path.join(dirpath, f)


def open_read(path: str) -> BinaryIO:
    """A seekable binary reader (``soundfile``, ``pyarrow`` and ``ijson`` read it directly)."""
    return FileSystems.open(str(path), compression_type=CompressionTypes.UNCOMPRESSED)


def open_write(path: str) -> BinaryIO:
    if not is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return FileSystems.create(str(path), compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes:
    with open_read(path) as f:
        return f.read()


def write_bytes(path: str, data: bytes) -> None:
    with open_write(path) as f:
        f.write(data)


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8-sig")


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def read_json(path: str):
    return json.loads(read_text(path))


def write_json(path: str, value) -> None:
    write_text(path, json.dumps(value, indent=1) + "\n")


def text_stream(path: str) -> io.TextIOWrapper:
    """A corpus text file streamed: UTF-8 with or without a BOM, undecodable bytes as U+FFFD
    (for the reader to reject), newlines left to ``csv``."""
    return io.TextIOWrapper(open_read(path), encoding="utf-8-sig", errors="replace", newline="")


def delete(path: str) -> None:
    """Remove one file; a missing one is fine."""
    if exists(path):
        FileSystems.delete([str(path)])


def delete_tree(folder: str) -> None:
    """Remove ``folder`` and everything below it; nothing there is fine."""
    if not is_remote(folder):
        shutil.rmtree(folder, ignore_errors=True)
        return
    paths = files_under(folder)
    if paths:
        FileSystems.delete(paths)


def copy_file(source: str, target: str) -> None:
    with open_read(source) as src, open_write(target) as dst:
        shutil.copyfileobj(src, dst, 1 << 22)


def copy_tree(source: str, target: str) -> None:
    """Copy every file below ``source`` to the same relative path below ``target``."""
    if not is_remote(source) and not is_remote(target):
        shutil.copytree(source, target, dirs_exist_ok=True)
        return
    for path in files_under(source):
        relative = path[len(source.rstrip("/")) + 1 :]
        copy_file(path, join(target, *relative.split("/")))


def local_copy(path: str) -> str:
    """A local path for ``path``: itself when local, else a copy made once per machine in the
    cache folder (``$SPEECHGPT_CACHE`` or the temp dir). Works for a file or a folder."""
    if not is_remote(path):
        return path
    root = os.environ.get(CACHE_ENV) or os.path.join(tempfile.gettempdir(), "speechgpt-cache")
    key = hashlib.sha256(path.rstrip("/").encode()).hexdigest()[:16]
    local = os.path.join(root, key, name(path))
    if os.path.exists(local):
        return local
    partial = tempfile.mkdtemp(dir=os.makedirs(root, exist_ok=True) or root)
    target = os.path.join(partial, name(path))
    if match(path.rstrip("/"), limit=1) == [path.rstrip("/")]:
        copy_file(path, target)
    else:
        copy_tree(path.rstrip("/"), target)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    with contextlib.suppress(OSError):  # another process on this worker finished first
        os.rename(target, local)
    shutil.rmtree(partial, ignore_errors=True)
    return local


def read_parquet(path: str, columns: list[str] | None = None):
    """One Parquet file (path or URI) as an Arrow table."""
    import pyarrow.parquet as pq

    with open_read(path) as f:
        return pq.read_table(f, columns=columns)


@contextlib.contextmanager
def local_output(output: str):
    """A local folder for a job that writes with local-only libraries (``save_pretrained``,
    matplotlib): ``output`` itself, or a temp folder copied to the URI ``output`` at the end."""
    if not is_remote(output):
        os.makedirs(output, exist_ok=True)
        yield output
        return
    with tempfile.TemporaryDirectory(prefix="speechgpt-output-") as local:
        yield local
        delete_tree(output)
        copy_tree(local, output)


def staging(output: str) -> str:
    """Where a job writes before ``commit``: beside the output, never inside it."""
    return output.rstrip("/") + STAGING_SUFFIX


def start(output: str) -> str:
    """A clean staging prefix for ``output``; left-overs of a crashed run are removed."""
    stage = staging(output)
    delete_tree(stage)
    return stage


def commit(stage: str, output: str, marker: dict) -> None:
    """Put a finished staging folder in place of ``output``, the marker last.

    The old output stops looking finished first (its marker goes), so a crash in between
    leaves no folder that a consumer would take as whole.
    """
    delete(join(output, MARKER))
    delete_tree(output)
    if is_remote(output):
        copy_tree(stage, output)
        delete_tree(stage)
    else:
        os.makedirs(os.path.dirname(output), exist_ok=True)
        os.rename(stage, output)
    write_json(join(output, MARKER), marker)


def require_complete(folder: str, what: str) -> dict:
    """The marker of a finished output, or an error that says the folder is not one."""
    marker = join(folder, MARKER)
    if not is_remote(folder):
        require_finished(folder, what)
    elif not exists(marker):
        raise FileNotFoundError(f"{what} {folder} has no {MARKER}: not a finished output")
    return read_json(marker)
