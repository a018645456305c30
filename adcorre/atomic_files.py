"""Writing files so that a crash leaves the old file or the new one, never half of one.

Everything the project writes for a user (model files, logs, reports, CSV tables, pictures)
goes through `atomic_path`: the content is written to a temporary name in the same folder,
flushed to the disk (`fsync`), then `os.replace` (atomic on POSIX and Windows) puts it in place
and the folder's new entry is flushed too. A killed run, a full disk, an exception while
writing or a power cut leaves the old file or the new one, never half of one or an empty one
under the final name (without the first `fsync` the rename can reach the disk before the data).

Example (the folder `out` is created; no temporary file is left in it):
>>> with atomic_path("out/report.txt") as temporary:
...     with open(temporary, "w") as handle:
...         handle.write("done")
4
>>> os.listdir("out"), open("out/report.txt").read()
(['report.txt'], 'done')
"""

import contextlib
import json
import os
import tempfile


def _fsync_file(path):
    """Flushes one file's data to the disk (opened for writing: Windows' flush needs it)."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_tree(path):
    """Flushes a written file, or every file of a written folder (a SavedModel) and the folder."""
    if not os.path.isdir(path):
        _fsync_file(path)
        return
    for folder, _, files in os.walk(path):
        for name in files:
            _fsync_file(os.path.join(folder, name))
        fsync_folder(folder)


def fsync_folder(folder):
    """Flushes a folder's entries (a rename into it) to the disk. POSIX only: Windows opens no
    folder as a file, and its renames are journalled by NTFS."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path`; on success it replaces `path`.

    Args:
        path: the final file. Its folder is created when missing.

    Yields:
        A fresh path in the same folder (same suffix, so writers that pick a format by
        suffix behave the same). It does not exist yet: the caller creates it.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    # The temporary name ends with the whole final name, so every suffix survives for the
    # writers that pick a format by it (".h5", Keras' ".weights.h5", ".tar.gz"...).
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path),
                                         dir=folder)
    os.close(handle)
    os.remove(temporary)  # writers create the file themselves; only the unique name was wanted
    try:
        yield temporary
        _fsync_tree(temporary)
        os.replace(temporary, path)
        fsync_folder(folder)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_bytes(path, data):
    """Writes `data` to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)


def write_text(path, text):
    """Writes `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)


def write_json(path, payload):
    """Writes `payload` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(payload, indent=1) + "\n")
