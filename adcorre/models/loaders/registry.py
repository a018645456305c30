"""The loaders, found and put in order: `LOADERS`, `loader_for`, `loadable_kinds`.

A loader is a module of the package `adcorre.models.loaders` that declares

- `NAME`: a short name (`ModelInfo.loader` carries it),
- `ORDER`: an integer; loaders are asked in increasing order (each its own, no two alike),
- `SUFFIXES`: the names its files usually end in (words only the refusal below),
- `DESCRIPTION`: what it loads, in the words of error messages,
- `sniff(probe)`: whether it recognises the file, from the `FileProbe` alone (first bytes,
  HDF5 root attributes, zip member names), reading nothing more of the file,
- `load(probe, *, labels=None, input_size=None, arm_affinity=None)`: `(model, ModelInfo)`,
- optionally `MISNAMED`: what to say of a file with one of its suffixes that no loader
  recognises (a checkpoint cut short).

The modules register themselves by being there: `loaders()` imports every module of the
package and keeps those that declare `sniff` and `load`, so a new file kind is one new module
with its `ORDER`, and nothing else changes. The sniffs are written so that at most one claims a
file (tests/models/test_loaders.py checks it on a file of every kind); `ORDER` makes the
order they are asked in, and so any message listing them, the same everywhere.

Example:
>>> [loader.NAME for loader in loaders()]
['project', 'official', 'classifier', 'torch', 'tflite', 'onnx']
"""

import functools
import importlib
import pkgutil

from adcorre.errors import WeightFileError
from adcorre.models.loaders.probe import FileProbe

_PACKAGE = __name__.rsplit(".", 1)[0]
# What every loader declares (see the module docstring).
REQUIRED = ("NAME", "ORDER", "SUFFIXES", "DESCRIPTION", "sniff", "load")


@functools.cache
def loaders():
    """Every loader module of the package, in `ORDER` (imported on the first call).

    Raises:
        TypeError: a loader that lacks one of `REQUIRED` or shares another's `ORDER` or `NAME`
            (a guard against a bug of ours in a new loader module, not a user's error).
    """
    package = importlib.import_module(_PACKAGE)
    found = []
    for entry in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{_PACKAGE}.{entry.name}")
        if hasattr(module, "sniff") and hasattr(module, "load"):
            missing = [name for name in REQUIRED if not hasattr(module, name)]
            if missing:
                raise TypeError(f"{module.__name__} is a loader without {', '.join(missing)}; "
                                   f"expected every one of {', '.join(REQUIRED)}.")
            found.append(module)
    for attribute in ("ORDER", "NAME"):
        values = [getattr(module, attribute) for module in found]
        twice = sorted({value for value in values if values.count(value) > 1})
        if twice:
            raise TypeError(f"Two loaders share the {attribute} {twice[0]!r}; expected each "
                               "loader's own.")
    return tuple(sorted(found, key=lambda module: module.ORDER))


def loadable_kinds(*more):
    """Every kind of file the loaders read, in words: `"a ..., a ... or an ..."`, with `more`
    kinds (in words too) after the loaders' own.

    Example:
    >>> loadable_kinds("a named release").endswith(", an .onnx export or a named release")
    True
    """
    descriptions = [loader.DESCRIPTION for loader in loaders()] + list(more)
    return ", ".join(descriptions[:-1]) + " or " + descriptions[-1]


def loader_for(probe):
    """The one loader that recognises the probed file.

    Each loader's `sniff` is asked once, in `ORDER`; the first that claims the file takes it.

    Args:
        probe: the file's `FileProbe`.

    Returns:
        The loader module.

    Raises:
        WeightFileError: no loader recognises the file; the message says what the file is
            and every kind that loads.
    """
    loader = _first_to_claim(probe)
    if loader is None:
        raise WeightFileError(_unrecognised(probe))
    return loader


def recognise(path):
    """The loader that recognises the file at `path` (its module: `.NAME`...), or None.

    Example (the kind a downloaded file turned out to be):
    `recognise(cached_file).NAME == "official"`.
    """
    with FileProbe(path) as probe:
        return _first_to_claim(probe)


def _first_to_claim(probe):
    return next((loader for loader in loaders() if loader.sniff(probe)), None)


def _unrecognised(probe):
    """What the file is, as far as the probe saw, and what would have loaded."""
    path, expected = probe.path, f"expected {loadable_kinds()}"
    if probe.is_hdf5:
        return (f"{path!r} is an HDF5 file but holds no Keras model (no model_config, no "
                f"layer_names); {expected}.")
    if probe.is_zip:
        return (f"{path!r} is a zip file but not a Keras .keras archive (no config.json) nor a "
                f"torch.save archive (no data.pkl); {expected}.")
    for loader in loaders():
        if probe.name.endswith(loader.SUFFIXES) and getattr(loader, "MISNAMED", None):
            return f"{path!r} {loader.MISNAMED}"
    return (f"{path!r} is neither an HDF5 file (.h5) nor a zip archive (.keras), and no loader "
            f"knows its first bytes; {expected}.")
