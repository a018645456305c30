"""The metadata `save_model` stores in this project's files: its format, written and read here.

Label names, input range, arch, input size, channels, heads and `extra` travel inside every
`.h5` / `.keras` file the project writes: an HDF5 root attribute `adcorre_metadata`, or the JSON
member `adcorre_metadata.json` of the `.keras` zip. `metadata_for` writes it (`weights_io.
save_model`), `parse_metadata` reads it back with every field checked, `read_metadata` reads it
from a probed file (`loaders.project_file` recognises the files that carry it).

Example:
>>> parse_metadata("m.h5", '{"format": "adcorre", "version": 1, "labels": ["a", "b"], '
...                '"input_range": [0, 1]}')["labels"]
['a', 'b']
"""

import json

import numpy as np

from adcorre.errors import WeightFileError
from adcorre.models import file_checks
from adcorre.models.registry import ARCHS

# Where the project's metadata lives inside a file.
METADATA_ATTRIBUTE = "adcorre_metadata"
METADATA_MEMBER = "adcorre_metadata.json"
METADATA_FORMAT = "adcorre"
METADATA_VERSION = 1


def read_metadata(probe):
    """The file's metadata, checked (`parse_metadata`), or None where it has none."""
    if METADATA_ATTRIBUTE in probe.attributes:
        return parse_metadata(probe.path, probe.attributes[METADATA_ATTRIBUTE])
    if METADATA_MEMBER not in probe.members:
        return None
    file_checks.check_archive_directory(probe.path, probe.archive)
    return parse_metadata(probe.path, file_checks.read_member(
        probe.path, probe.archive, METADATA_MEMBER, file_checks.MAX_METADATA_BYTES))


def metadata_for(model, *, labels, input_range, arch, extra):
    """The metadata `save_model` stores with `model`, as JSON text.

    Args:
        model: the functional model being saved.
        labels: a name per output class (checked by the caller).
        input_range: `(lo, hi)` (checked by the caller).
        arch: the `cnn_model` arch name, or None.
        extra: a JSON-serialisable dict, or None.

    Raises:
        TypeError: `extra` is not JSON, before anything is written.
    """
    input_shape = model.inputs[0].shape
    return json.dumps({
        "format": METADATA_FORMAT,
        "version": METADATA_VERSION,
        "labels": list(labels),
        "input_range": list(input_range),
        "arch": arch,
        "input_size": [input_shape[1], input_shape[2]],
        "channels": input_shape[-1],
        "num_embeddings": len(model.outputs) - 1,
        "extra": extra or {},
    })


def parse_metadata(path, raw):
    """The project metadata of a file, checked field by field (`WeightFileError` otherwise)."""
    try:
        metadata = json.loads(file_checks.as_text(raw))
    except (ValueError, UnicodeDecodeError) as error:
        raise WeightFileError(
            f"{path!r}: its {METADATA_ATTRIBUTE} is not valid JSON ({error}); the file is "
            "corrupt or was edited by hand. Expected the metadata save_model writes.") from None
    if not isinstance(metadata, dict):
        raise WeightFileError(f"{path!r}: its {METADATA_ATTRIBUTE} is {type(metadata).__name__} "
                              "JSON; expected an object with labels, input_range, arch...")

    def bad(field, expected):
        value = metadata.get(field, "<missing>")
        return WeightFileError(
            f"{path!r}: {METADATA_ATTRIBUTE} field {field!r} is {value!r:.120}; expected "
            f"{expected}. The file's metadata is corrupt or was edited by hand.")

    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)

    if metadata.get("format") != METADATA_FORMAT:
        raise bad("format", repr(METADATA_FORMAT))
    version = metadata.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= METADATA_VERSION:
        raise bad("version", f"an integer 1..{METADATA_VERSION} (a newer file needs a newer "
                             "version of this project)")
    labels = metadata.get("labels")
    if (not isinstance(labels, list) or not labels
            or not all(isinstance(name, str) and name.strip() for name in labels)):
        raise bad("labels", "a non-empty list of label names (strings), one per output class")
    if len(set(labels)) != len(labels):
        raise bad("labels", "names that differ from each other")
    input_range = metadata.get("input_range")
    if (not isinstance(input_range, list) or len(input_range) != 2
            or not all(is_number(v) for v in input_range) or not input_range[0] < input_range[1]):
        raise bad("input_range", "two numbers [lo, hi] with lo < hi")
    if metadata.get("arch") is not None and metadata.get("arch") not in ARCHS:
        raise bad("arch", f"null or one of {tuple(ARCHS)}")
    size = metadata.get("input_size")
    if size is not None and (not isinstance(size, list) or len(size) != 2 or not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
            for v in size)):
        raise bad("input_size", "[height, width], positive integers (or null)")
    if metadata.get("channels") not in (None, 1, 3):
        raise bad("channels", "1 or 3")
    embeddings = metadata.get("num_embeddings")
    if embeddings is not None and (not isinstance(embeddings, int) or isinstance(embeddings, bool)
                                   or embeddings < 0):
        raise bad("num_embeddings", "an integer >= 0")
    if not isinstance(metadata.get("extra", {}), dict):
        raise bad("extra", "an object")
    return metadata
