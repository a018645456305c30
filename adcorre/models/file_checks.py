"""What a model file must be before anything in it is read, and how it is opened: no code runs.

The loaders (`models/loaders`) read through these checks: HDF5 files are opened read-only and
their layer lists checked (every layer's weights read exactly once); `.keras` archives are sized
from their directory before anything is unpacked, and unpacked by Keras into a folder of ours
that goes whatever happens; a model config is read as plain JSON and refused when it holds code
(`Lambda` and its kin, serialised lambdas) or layers neither Keras nor this project defines.

Example:
>>> from adcorre.errors import WeightFileError
>>> try:
...     reject_foreign_layers("m.keras", {"class_name": "Functional", "config": {"layers": [
...         {"class_name": "Lambda", "config": {}}]}})
... except WeightFileError as error:
...     print(str(error).split(";")[0])
'm.keras' contains Lambda layers, which hold Python code
"""

import contextlib
import json
import tempfile
import threading
import zipfile

import h5py

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras

from adcorre.errors import WeightFileError, first_line

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# Layers that hold Python code (Keras 2's auto-wrapped TF ops included): never deserialised.
_CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")
# Config keys whose values are layers: a model's `layers`, wrappers' inner layers, RNN cells.
_LAYER_KEYS = ("layers", "layer", "forward_layer", "backward_layer", "cell", "cells")
# The most a zip member's JSON may unpack to: Keras configs are a few MB at most (Xception's is
# well under 1 MB); a small archive that unpacks to gigabytes (a zip bomb) is refused unread.
MAX_CONFIG_BYTES = 32 * 2**20
MAX_METADATA_BYTES = 2**20
# Keras unpacks a whole `.keras` archive to a temporary folder when it holds more than its three
# own members (ours adds its metadata). Read off the archive's directory before anything is
# unpacked: the largest model of this project unpacks to about 100 MB, a Keras archive holds a
# handful of members (assets add a few); a file past these is refused unread.
MAX_ARCHIVE_BYTES = 2**30
MAX_ARCHIVE_MEMBERS = 1000
# `tempfile.tempdir` is process-wide: one archive load at a time points it at its own folder.
_PRIVATE_TEMP_LOCK = threading.Lock()


def read_member(path, archive, name, cap):
    """A zip member's bytes, refused past `cap` bytes unpacked, whatever the directory says."""
    declared = archive.getinfo(name).file_size
    data = b""
    if declared <= cap:
        with archive.open(name) as handle:
            data = handle.read(cap + 1)
    if declared > cap or len(data) > cap:
        raise WeightFileError(
            f"{path!r}: its {name} unpacks to {max(declared, len(data)) / 2**20:.0f} MB, more "
            f"than the {cap / 2**20:.0f} MB this loader reads of it; expected a Keras model "
            "archive (its JSON is a few MB at most). The file may be a zip bomb.")
    return data


def has_hdf5_signature(handle, size):
    """Whether the open binary file holds HDF5's signature where HDF5 puts it: at byte 0, or
    after a user block of 512, 1024, 2048... bytes (read through `handle`, nothing opened)."""
    offset = 0
    while offset + len(HDF5_SIGNATURE) <= size:
        handle.seek(offset)
        if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def open_hdf5(path):
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise WeightFileError(
            f"{path!r} looks like HDF5 but cannot be read ({first_line(error)}); it may be "
            "truncated. Expected a complete Keras .h5 file."
        ) from None


def open_zip(path, handle=None):
    """The zip archive `path` (read through the open `handle` when given); its directory is
    read, nothing unpacked (`check_archive_directory` sizes it)."""
    try:
        return zipfile.ZipFile(path if handle is None else handle)
    except zipfile.BadZipFile as error:
        raise WeightFileError(
            f"{path!r} is not a readable zip archive ({error}); expected a .keras file."
        ) from None


def check_archive_directory(path, archive):
    """Refuses a Keras archive whose directory lists more members or unpacked bytes than a
    Keras model holds, before anything in it is unpacked."""
    members = archive.infolist()
    unpacked = sum(member.file_size for member in members)
    if len(members) > MAX_ARCHIVE_MEMBERS or unpacked > MAX_ARCHIVE_BYTES:
        raise WeightFileError(
            f"{path!r}: its directory lists {len(members)} members that unpack to "
            f"{unpacked / 2**20:.0f} MB; a Keras model archive holds at most "
            f"{MAX_ARCHIVE_MEMBERS} members and {MAX_ARCHIVE_BYTES / 2**20:.0f} MB here (this "
            "project's largest unpacks to about 100 MB). Refused before anything was unpacked: "
            "the file may be a zip bomb.")


@contextlib.contextmanager
def private_temp_folder():
    """Points `tempfile` at a folder of our own for the block, and removes it afterwards.

    Keras unpacks a `.keras` archive into the system's temporary folder and removes what it
    unpacked only when the unpacking itself succeeded (a full disk mid-way left it behind);
    whatever it makes inside this block goes where it is removed on every failure.
    """
    with _PRIVATE_TEMP_LOCK, tempfile.TemporaryDirectory(prefix="adcorre-load-") as folder:
        saved, tempfile.tempdir = tempfile.tempdir, folder
        try:
            yield folder
        finally:
            tempfile.tempdir = saved


def check_layer_lists(path, file):
    """Every layer's weights read exactly once: Keras' `.h5` reader pairs the file's layer list
    with the model's layers by position, so a list naming one layer twice (and leaving out
    another of the same shapes) would load the wrong weights without a word."""
    group = file["model_weights"] if "model_weights" in file else file
    layers = [as_text(name) for name in group.attrs.get("layer_names", [])]
    for name in sorted({name for name in layers if layers.count(name) > 1}):
        raise WeightFileError(
            f"{path!r}: its layer list names the layer {name!r} {layers.count(name)} times; "
            "expected each layer once (a file that names one layer twice misses another and "
            "would load the wrong weights).")
    for name in layers:
        if name not in group:
            raise WeightFileError(f"{path!r}: its layer list names {name!r}, which the file does "
                                  "not hold; expected a complete Keras .h5 file.")
        weights = [as_text(w) for w in group[name].attrs.get("weight_names", [])]
        twice = sorted({w for w in weights if weights.count(w) > 1})
        if twice:
            raise WeightFileError(f"{path!r}: layer {name!r} lists the weight {twice[0]!r} "
                                  f"{weights.count(twice[0])} times; expected each weight once.")


def parse_json(path, text):
    try:
        config = json.loads(as_text(text))
    except (ValueError, UnicodeDecodeError) as error:
        raise WeightFileError(f"{path!r}: its model config is not valid JSON ({error}).") from None
    if not isinstance(config, dict):
        raise WeightFileError(f"{path!r}: its model config is {type(config).__name__} JSON; "
                              "expected an object (a Keras model config).")
    return config


def _class_names(config):
    """What a model config names, in one walk over it.

    Returns:
        `(layers, code)`: every `(class_name, registered_name)` of a layer (the layers of nested
        models and the layers wrappers hold, TimeDistributed's `layer`, Bidirectional's
        `forward_layer` / `backward_layer`, RNN cells, included), and the set of class names
        anywhere in the config that stand for stored code (a Lambda layer, Keras 3's
        serialised `__lambda__` function, reported as "Lambda"), however deeply nested.
    """
    layers, code = [], set()

    def walk(node, holds_layers):
        if isinstance(node, list):
            for value in node:
                walk(value, holds_layers)
        elif isinstance(node, dict):
            class_name = node.get("class_name")
            if holds_layers and "class_name" in node:
                layers.append((class_name, node.get("registered_name")))
            if class_name in _CODE_LAYERS:
                code.add(class_name)
            elif class_name == "__lambda__":  # Keras 3's code of a lambda
                code.add("Lambda")
            for key, value in node.items():
                walk(value, key in _LAYER_KEYS)

    walk(config, True)
    return layers, code


def reject_foreign_layers(path, config):
    """Refuses code-holding layers and layers that neither Keras nor this project defines."""
    classes, code = _class_names(config)
    code = sorted(code)
    if code:
        raise WeightFileError(
            f"{path!r} contains {', '.join(code)} layers, which hold Python code; this loader "
            "never runs code stored in a file. Expected built-in Keras layers only (or the "
            "official Ad-Corre graph, which is rebuilt in code)."
        )
    unknown = sorted({
        name for name, registered in classes
        if not _is_known_layer(name, registered)
    })
    if unknown:
        raise WeightFileError(
            f"{path!r} contains layers that are neither built into Keras nor defined by this "
            f"project: {', '.join(unknown)}. Expected a Keras image classifier made of built-in "
            "layers, a file saved by this project, or an official Ad-Corre file."
        )


def _is_known_layer(class_name, registered_name):
    if class_name in ("Functional", "Model", "Sequential", "InputLayer"):
        return True
    if registered_name and keras.saving.get_registered_object(registered_name) is not None:
        return True
    if hasattr(keras.layers, class_name):
        return True
    return keras.saving.get_registered_object(class_name) is not None


def as_text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


