"""Named files: the one cache that serves every file of `weights_table`, each checked on use.

`TestModels(h5_address="adcorre-rafdb")`, `load_model("xcp.rafdb")`, `--weights NAME` in
`adcorre test` and `adcorre train`, `TrainModel(weights=NAME)` and `CNNModel(weights="imagenet")`
take a name (`arch.tag` or an alias) wherever no file of that name exists. The file is looked for
in the cache, `$ADCORRE_HOME/weights/` (default `~/.adcorre/weights/`), then in the caches of the
tools that publish it (Keras' `$KERAS_HOME/models`, torchvision's `$TORCH_HOME/hub/checkpoints`:
a copy a user already has there is used in place, neither moved nor downloaded again), and
else downloaded into the cache (`downloads.download`): from its official address, or from
`$ADCORRE_WEIGHTS_MIRROR/<file name>` when that variable holds a base URL.

Every use checks the file's digest: the one its publisher states (`WeightFile.digest`), else the
SHA-256 recorded beside it at its first download (`<file>.sha256`, in `sha256sum`'s format). A
file that does not match is refused, naming both digests (a fresh download that does not match
is never kept). After loading, `check_kind` refuses a file under an official name whose
structure is not that release's (another kind, arch or class count).

Example:
>>> sorted(NAMED_WEIGHTS)[:2]
['adcorre-affectnet', 'adcorre-fer2013']
>>> is_name("adcorre-rafdb"), is_name("xcp.rafdb"), is_name("RafDB_8696.h5")
(True, True, False)

This module imports nothing of ours but `errors`, `atomic_files`, the arch registry,
`weights_table` and `downloads` (no Keras).
"""

import os
import sys
import urllib.parse

from adcorre.atomic_files import write_text
from adcorre.errors import SettingError, WeightFileError, WeightsUnavailableError
from adcorre.models import downloads
from adcorre.models.registry import get_arch
from adcorre.models.weights_table import ALIASES, WEIGHT_FILES, is_name, resolve, weight_files

HOME_VARIABLE = "ADCORRE_HOME"
MIRROR_VARIABLE = "ADCORRE_WEIGHTS_MIRROR"
# Beside a file without a published digest: the SHA-256 of its first download.
RECORD_SUFFIX = ".sha256"
# The first bytes a whole file of each kind starts with: HDF5; torch.save's zip archive or its
# legacy pickle.
_SIGNATURES = {".h5": (b"\x89HDF\r\n\x1a\n",), ".pth": (b"PK\x03\x04", b"\x80\x02")}
# The names earlier versions took (the aliases), for the messages that list names.
NAMED_WEIGHTS = {alias: WEIGHT_FILES[name] for alias, name in ALIASES.items()}

# This process's own work: files it downloaded (-> whether it wrote their digest record), and
# files whose digest it checked (-> their size and time, so a second use in one run reads once).
_FETCHED_HERE = {}
_CHECKED_HERE = {}

__all__ = ["is_name", "resolve", "locate", "fetch", "check_kind", "initial_weights",
           "imagenet_file", "verify", "listing", "cache_folder", "NAMED_WEIGHTS"]


def cache_folder():
    """`$ADCORRE_HOME/weights` (default `~/.adcorre/weights`), where named files are kept."""
    home = os.environ.get(HOME_VARIABLE) or os.path.join(os.path.expanduser("~"), ".adcorre")
    return os.path.join(home, "weights")


def cached_path(name):
    """Where the file of `name` is (or would be) in the cache."""
    return os.path.join(cache_folder(), resolve(name).file)


def other_cache_folders(record):
    """The folders of other tools' caches that may keep `record`'s file (`other_caches`)."""
    home = os.path.expanduser("~")
    keras_home = os.environ.get("KERAS_HOME", os.path.join(home, ".keras"))
    cache = os.environ.get("XDG_CACHE_HOME", os.path.join(home, ".cache"))
    torch_home = os.environ.get("TORCH_HOME", os.path.join(cache, "torch"))
    folders = {"keras": os.path.join(keras_home, "models"),
               "torch": os.path.join(torch_home, "hub", "checkpoints")}
    return [folders[tool] for tool in record.other_caches]


def find(name):
    """The file of `name` on this machine (the cache first, then other tools'), or None."""
    record = resolve(name)
    places = [cached_path(name)] + [os.path.join(folder, record.file)
                                    for folder in other_cache_folders(record)]
    return next((path for path in places if os.path.isfile(path)), None)


def is_cached(name):
    return find(name) is not None


def address(name):
    """The URL the file of `name` is fetched from: the mirror's when one is set, else its own
    (None where it has none)."""
    record = resolve(name)
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if mirror:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(record.file)
    return record.url


def locate(path_or_name, progress=None):
    """A local model file for `path_or_name`, fetching a named file the first time.

    Args:
        path_or_name: a path (returned as it is when something exists there, or when it is not
            a name), or a name of `weights_table` (`"xcp.rafdb"`, `"adcorre-rafdb"`).
        progress: see `downloads.download` (default: a bar on a terminal, lines elsewhere).

    Returns:
        `(path, fetched)`: the file to load, and True when this process downloaded it.

    Raises:
        WeightsUnavailableError: not on this machine and cannot be fetched (offline, no address,
            cut short, not the file, past the deadline); the message names the address and the
            path to put the file at.
        WeightFileError: its digest is not the expected one, or the name is a backbone's
            ImageNet file (no classifier: it starts training, it is no model to load).
    """
    path_or_name = os.fspath(path_or_name)
    if os.path.exists(path_or_name) or not is_name(path_or_name):
        return path_or_name, False
    record = resolve(path_or_name)
    if record.kind == "keras_backbone":
        raise WeightFileError(
            f"{path_or_name} is {record.kind_text}: it starts training (adcorre train --arch "
            f"{record.arch} --weights {record.name}), it is no model to recognise with.")
    path = fetch(record.name, progress)
    return path, path in _FETCHED_HERE


def fetch(name, progress=None):
    """The checked local file of `name`: found on this machine, or downloaded into the cache.

    Args:
        name: a record's name or alias.
        progress: see `downloads.download`.

    Returns:
        The file's path.

    Raises:
        WeightsUnavailableError, WeightFileError: as `locate`.
    """
    record = resolve(name)
    found = find(record.name)
    if found is not None:
        check_digest(record, found)
        return found
    target = cached_path(record.name)
    url = address(record.name)
    if url is None:
        raise WeightsUnavailableError(
            f"{record.name} ({record.file}) cannot be downloaded: {record.how_to_get}. Download "
            f"it by hand and put it at {target}, or pass its path to --weights (h5_address=), or "
            f"set {MIRROR_VARIABLE} to a base URL that serves {record.file}.")
    recorded = _recorded_digest(target)
    advice = _advice(record, target)
    if recorded and not record.digest:
        advice = (f"The expected SHA-256 was recorded at its first download, in {target}"
                  f"{RECORD_SUFFIX}: remove that file to take what the address serves now. "
                  + advice)
    digests = downloads.download(
        url, target, what=f"{record.name} ({record.file})", progress=progress,
        signatures=_SIGNATURES[os.path.splitext(record.file)[1]],
        digest=record.digest or recorded, advice=advice)
    wrote_record = record.digest is None and recorded is None
    if wrote_record:
        _write_record(target, digests["sha256"])
    _FETCHED_HERE[target] = wrote_record
    _CHECKED_HERE[target] = _stamp(target)
    return target


def check_digest(record, path):
    """Refuses `path` unless its digest is `record`'s (published, or recorded at its first
    download); a file in the cache with neither gets its SHA-256 recorded now (one note)."""
    stamp = _stamp(path)
    if _CHECKED_HERE.get(path) == stamp:
        return
    expected, said = record.digest, record.digest_source
    if expected is None:
        expected, said = _recorded_digest(path), f"recorded at its first download in " \
                                                 f"{path}{RECORD_SUFFIX}"
    if expected is None:
        _write_record(path, downloads.file_digest(path))
        print(f"note: {path} ({record.name}) has no published digest; its SHA-256 is now "
              f"recorded in {path}{RECORD_SUFFIX} and checked on every later use.",
              file=sys.stderr)
    else:
        algorithm = expected.split(":", 1)[0]
        actual = downloads.file_digest(path, algorithm)
        if not downloads.digest_matches(expected, actual):
            accept = "" if record.digest else (f"; or, to take this file as it is, remove "
                                               f"{path}{RECORD_SUFFIX}")
            raise WeightFileError(
                f"{path} is not the file published as {record.name}: its {algorithm.upper()} is "
                f"{actual}, expected {downloads.expected_digest(expected)} ({said}). Remove it "
                f"to download it again{accept}.")
    _CHECKED_HERE[path] = stamp


def forget(path):
    """Removes a file this process downloaded that turned out not to load (and the digest it
    recorded for it), so the next call fetches it again."""
    wrote_record = _FETCHED_HERE.pop(path, None)
    if wrote_record is None:
        return
    os.remove(path)
    _CHECKED_HERE.pop(path, None)
    if wrote_record and os.path.exists(path + RECORD_SUFFIX):
        os.remove(path + RECORD_SUFFIX)


def check_kind(path, info):
    """Refuses a loaded file kept under an official name that is not of that release's kind.

    Args:
        path: the file loaded; only a file where the cache keeps a record's file is checked.
        info: its `ModelInfo` (`kind`, `arch`, `num_classes`).

    Raises:
        WeightFileError: it loaded as another kind, arch or class count than the record's.
    """
    record = _record_at(path)
    if record is None:
        return
    found = (info.kind, info.arch, info.num_classes)
    if found != (record.kind, record.arch, record.classes):
        fresh = " (it was not kept)" if path in _FETCHED_HERE else "; remove it to download it again"
        raise WeightFileError(
            f"{path} is kept as {record.name} but is not that release: expected "
            f"{record.kind_text}, it holds a {info.kind} model of arch {info.arch} with "
            f"{info.num_classes} classes{fresh}.")


def initial_weights(arch, weights, progress=None):
    """What `CNNModel` starts `arch` from when `weights` names a file of the table.

    Args:
        arch: the arch being built.
        weights: anything `CNNModel.get_model` takes; a name of the table is resolved (a path
            that exists wins over a name).
        progress: see `downloads.download`.

    Returns:
        `weights` itself, unless it is a name: `"imagenet"` for the arch's ImageNet file
        (fetched now), else the fetched file's path.

    Raises:
        SettingError: the named file belongs to another arch.
        WeightsUnavailableError, WeightFileError: as `fetch`.
    """
    if not isinstance(weights, str) or weights == "imagenet" or os.path.exists(weights) \
            or not is_name(weights):
        return weights
    record, spec = resolve(weights), get_arch(arch)
    if record.name == spec.imagenet:
        fetch(record.name, progress)
        return "imagenet"
    if record.arch != spec.name or record.kind == "keras_backbone":
        raise SettingError(
            f"weights {weights!r} is {record.kind_text}: it starts arch {record.arch!r}, not "
            f"{arch!r} (--arch {record.arch}).")
    return fetch(record.name, progress)


def imagenet_file(arch, progress=None):
    """The checked local file of `arch`'s ImageNet weights (`ArchSpec.imagenet`), fetched once.

    Raises:
        SettingError: the arch has no ImageNet weights.
        WeightsUnavailableError: not on this machine and cannot be fetched (the message names
            where it was looked for and the `weights=None` way out).
    """
    spec = get_arch(arch)
    if spec.imagenet is None:
        raise SettingError(f"arch {arch!r} has no ImageNet weights; use weights=None.")
    try:
        return fetch(spec.imagenet, progress)
    except WeightsUnavailableError as error:
        raise WeightsUnavailableError(
            f"ImageNet weights for arch {arch!r}: {error} Or build with weights=None (--weights "
            "none) to train from scratch.") from None


def verify():
    """Checks every file of the table found on this machine against its digest.

    Returns:
        One dict per record: `name`, `path` (None when not here), `status` (`"ok"`,
        `"mismatch"`, `"unrecorded"` or `"absent"`) and `said` (one line).
    """
    rows = []
    for record in weight_files():
        path = find(record.name)
        row = {"name": record.name, "path": path}
        try:
            if path is None:
                row.update(status="absent", said="not on this machine")
            elif record.digest is None and _recorded_digest(path) is None:
                row.update(status="unrecorded", said=f"{path}: no digest recorded yet "
                                                     "(recorded at its next use)")
            else:
                _CHECKED_HERE.pop(path, None)  # --verify reads every byte again
                check_digest(record, path)
                against = (f"its published {record.digest.split(':')[0].upper()} "
                           f"({record.digest_source})" if record.digest else
                           f"the SHA-256 recorded at its first download ({path}{RECORD_SUFFIX})")
                row.update(status="ok", said=f"{path}: matches {against}")
        except WeightFileError as error:  # a mismatch, or a record that is not one
            row.update(status="mismatch", said=str(error))
        if record.github_blob and row["status"] == "ok":
            row["said"] += _github_copy(record, path)
        rows.append(row)
    return rows


def _github_copy(record, path):
    """Whether `path` holds the bytes of the authors' GitHub copy, in words."""
    same = downloads.git_blob_id(path) == record.github_blob
    return (f"; {'the same bytes as' if same else 'not the bytes of'} the authors' GitHub "
            f"copy (git blob {record.github_blob[:10]})")


def listing():
    """The table as rows for `adcorre weights`: one dict per record, in the table's order."""
    rows = []
    for record in weight_files():
        path = find(record.name)
        rows.append({
            "name": record.name, "aliases": list(record.aliases), "file": record.file,
            "size": os.path.getsize(path) if path else record.size,
            "cached": path, "digest": _digest_words(record, path),
            "reported": record.reported, "source": record.source, "address": record.url,
            "kind": record.kind_text, "classes": record.classes, "labels": record.labels,
            "how_to_get": record.how_to_get})
    return rows


# ------------------------------------------------------------------------------------ helpers


def _digest_words(record, path=None):
    """The digest a file is checked against, in a few words."""
    if record.digest:
        algorithm, value = record.digest.split(":", 1)
        return f"{algorithm} prefix {value}" if downloads.is_prefix(record.digest) else \
            f"{algorithm} published"
    if path is None:
        return f"sha256 at 1st {'download' if record.url else 'use'}"
    return "sha256 recorded" if _recorded_digest(path) else "sha256 at next use"


def _advice(record, target):
    """What a user can do when the download fails, for the end of its error."""
    others = other_cache_folders(record)
    also = f" (or into {' or '.join(others)})" if others else ""
    return (f"Put the file at {target}{also} yourself, or set {MIRROR_VARIABLE} to a base URL "
            f"that serves {record.file}, and run again.")


def _record_at(path):
    """The record whose file the cache (or another tool's) keeps at `path`, or None."""
    path = os.path.abspath(path)
    for record in weight_files():
        places = [cache_folder()] + other_cache_folders(record)
        if any(path == os.path.abspath(os.path.join(p, record.file)) for p in places):
            return record
    return None


def _recorded_digest(path):
    """`"sha256:<hex>"` from the record beside `path`, or None when there is none."""
    try:
        with open(path + RECORD_SUFFIX, encoding="ascii") as handle:
            value = handle.read().split()[0].lower()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, IndexError):
        value = ""
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise WeightFileError(f"{path}{RECORD_SUFFIX} is not a SHA-256 record (expected 64 hex "
                              "digits and the file's name, as sha256sum writes); remove it.")
    return f"sha256:{value}"


def _write_record(path, sha256):
    write_text(path + RECORD_SUFFIX, f"{sha256}  {os.path.basename(path)}\n")


def _stamp(path):
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns
