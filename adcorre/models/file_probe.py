"""What every loader's `sniff` looks at, read from the file once: a `FileProbe`.

`load_model` opens one probe per file and hands the same one to every loader's `sniff` and then
to the one loader that recognised the file, so the file is opened for probing once whatever the
number of loaders: its first bytes (and HDF5's signature after a user block) are read through
one handle, which also serves as the zip archive's when the file is a zip; an HDF5 file is
opened once more, read-only, by h5py, and its root attributes read into a dict. Nothing is
unpacked and no model is built here. The probe stays open until its block ends, so the loader
that takes the file reads the same open HDF5 file or zip directory (an official file's weights,
a `.keras` archive's config) without opening it again.

Example:
>>> import os, tempfile, zipfile
>>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
>>> with zipfile.ZipFile(path, "w") as archive:
...     archive.writestr("config.json", "{}")
>>> with FileProbe(path) as probe:
...     probe.is_zip, probe.is_hdf5, probe.members
(True, False, ('config.json',))
"""

import os
import zipfile

from adcorre.models import file_checks

# Enough for every signature a loader reads: HDF5's 8 bytes, torch's 14-byte legacy magic,
# TFLite's identifier at bytes 4-8, the first fields of an ONNX protobuf.
HEAD_BYTES = 64


class FileProbe:
    """A model file's first bytes, its HDF5 root attributes or its zip directory, read once.

    Use it as a context manager: the handles it opened close when the block ends.

    Args:
        path: an existing, non-empty file (`weights_io.load_model` checks that first).

    Attributes:
        path: the file, as a string.
        name: its base name, lower case (what suffix checks read).
        size: its size in bytes.
        head: its first `HEAD_BYTES` bytes.
        hdf5: the open read-only `h5py.File`, or None when the file is not HDF5.
        attributes: the HDF5 root attributes (name -> value), empty for other files.
        archive: the open `zipfile.ZipFile`, or None when the file is not a zip archive.
        members: the zip member names, in directory order (empty for other files).

    Raises:
        WeightFileError: a file that says it is HDF5 or zip but cannot be read as one (cut
            short: the message says it may be truncated).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path).lower()
        self.size = os.path.getsize(self.path)
        self.hdf5, self.attributes, self.archive, self.members = None, {}, None, ()
        self._derived = {}
        self._handle = open(self.path, "rb")
        try:
            self.head = self._handle.read(HEAD_BYTES)
            if file_checks.has_hdf5_signature(self._handle, self.size):
                self.hdf5 = file_checks.open_hdf5(self.path)
                self.attributes = dict(self.hdf5.attrs)
            elif zipfile.is_zipfile(self._handle):
                self.archive = file_checks.open_zip(self.path, self._handle)
                self.members = tuple(self.archive.namelist())
        except BaseException:
            self.close()
            raise

    @property
    def is_hdf5(self):
        return self.hdf5 is not None

    @property
    def is_zip(self):
        return self.archive is not None

    @property
    def model_config(self):
        """The HDF5 root attribute `model_config` parsed as JSON (as data, never deserialised),
        or None where there is none; parsed on first use, once.

        Raises:
            WeightFileError: it is not a JSON object.
        """
        raw = self.attributes.get("model_config")
        if raw is None:
            return None
        return self.derived("model_config", lambda probe: file_checks.parse_json(probe.path, raw))

    def derived(self, key, compute):
        """A fact computed from the probe on first use and kept, so that a sniff and the loader
        after it (or two sniffs) share it: `compute(probe)` runs once per key.

        Example (the official graph, read off the config once for two sniffs and a load):
        `probe.derived("official_spec", lambda probe: spec_from_config(probe.model_config))`.
        """
        if key not in self._derived:
            self._derived[key] = compute(self)
        return self._derived[key]

    def close(self):
        for handle in (self.archive, self.hdf5, self._handle):
            if handle is not None:
                handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        kind = "HDF5" if self.is_hdf5 else "zip" if self.is_zip else "other"
        return f"FileProbe({self.path!r}, {kind}, {self.size} bytes)"
