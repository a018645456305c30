"""File kinds as records: one module per kind of model file, each declaring one `Loader`.

`weights_io.load_model` opens one `file_probe.FileProbe` per file, asks the loaders' `sniff` in
their `order` and hands the file to the first that recognises it (`loader_for`). `LOADERS` lists
them in that order:

| `name` | module | `order` | recognised by |
| --- | --- | --- | --- |
| `project` | `project_file` | 10 | this project's metadata (HDF5 attribute, `.keras` member) |
| `official` | `official_h5` | 20 | the Ad-Corre graph in `model_config`; a weights-only HDF5 |
| `classifier` | `keras_classifier` | 30 | any other Keras config (`model_config`, `config.json`) |
| `torch` | `pytorch_checkpoint` | 40 | torch.save's legacy magic number, or a zip with `data.pkl` |
| `tflite` | `tflite_export` | 50 | the `TFL3` FlatBuffer identifier |
| `onnx` | `onnx_export` | 60 | an ONNX ModelProto's first fields |

A loader's module writes its `sniff(probe)` and `load(probe, *, labels=None, input_size=None,
arm_affinity=None)`, then declares `LOADER = register(Loader(name=..., order=..., ...))`. No list
of modules is kept anywhere: the first use of the registry imports every module of this folder
(found by listing it; `_*.py` left out), so a new file kind is one new module and nothing else
(docs/architecture.md, "Adding a file kind"). At most one sniff claims a file (each is written
so; tests/models/test_loaders.py runs every sniff on a file of every kind), and `order` makes
the order they are asked in, and so every message that lists them, the same everywhere.

Example:
>>> [loader.name for loader in loaders()][:3]
['project', 'official', 'classifier']
>>> loadable_kinds().startswith("a .h5 / .keras file saved by this project, an official")
True
"""

import dataclasses
import importlib
import os
from collections.abc import Callable

from adcorre.errors import WeightFileError
from adcorre.models.file_probe import FileProbe


@dataclasses.dataclass(frozen=True)
class Loader:
    """One kind of model file and how it loads.

    Attributes:
        name: a short name; `ModelInfo.loader` carries it, and a downloadable file's record
            (`weights_table`) names the loader that must recognise its file by it.
        order: where its `sniff` is asked among the loaders (lower first); each loader's own.
        suffixes: the names its files usually end in (the content decides; a name only words
            the refusal of a file that no loader recognises).
        description: what it loads, as error messages list it ("a PyTorch .pth checkpoint").
        sniff: `sniff(probe)` -> whether it recognises the file, from the `FileProbe` alone
            (first bytes, HDF5 root attributes, zip member names), reading nothing more.
        load: `load(probe, *, labels=None, input_size=None, arm_affinity=None)` -> `(model,
            info)`, the model built without running code from the file, `info` a `ModelInfo`
            made by `model_info`; every problem one `WeightFileError` naming the file.
        misnamed: what to say of a file named like its files (`suffixes`) that no loader
            recognises (a checkpoint cut short), or None.
    """

    name: str
    order: int
    suffixes: tuple
    description: str
    sniff: Callable
    load: Callable
    misnamed: str = None


# Loaders registered so far, by name: the modules of this folder (imported on first use) and any
# your own code registers.
_RECORDS = {}
_FOUND = []  # True once every module of this folder has been imported


def register(loader):
    """Adds `loader` to `LOADERS` (a loader module calls it on its own record).

    Args:
        loader: a `Loader`.

    Returns:
        `loader`, so a module writes `LOADER = register(Loader(...))`.

    Raises:
        TypeError: another loader already has its name or order (a guard against a new loader
            module written wrong, not against user input).
    """
    for other in _RECORDS.values():
        if other.name != loader.name and other.order == loader.order:
            raise TypeError(f"Loaders {other.name!r} and {loader.name!r} share the order "
                            f"{loader.order}; expected each loader's own.")
    known = _RECORDS.get(loader.name)
    if known is not None and known.sniff.__module__ != loader.sniff.__module__:
        raise TypeError(f"Two modules declare the loader {loader.name!r}; expected one.")
    _RECORDS[loader.name] = loader
    return loader


def _module_names():
    """The loader modules of this package's folder(s): every `NAME.py` but `_*.py`."""
    return sorted({name[:-3] for folder in __path__ for name in os.listdir(folder)
                   if name.endswith(".py") and not name.startswith("_")})


def loaders():
    """Every registered loader, in `order` (this folder's modules imported on the first call)."""
    if not _FOUND:
        for name in _module_names():
            importlib.import_module(f"{__name__}.{name}")
        _FOUND.append(True)
    return tuple(sorted(_RECORDS.values(), key=lambda loader: loader.order))


def __getattr__(name):
    # `LOADERS` is read from the records each time, so that importing this package imports no
    # loader (they load Keras) and a loader registered later is listed too.
    if name == "LOADERS":
        return loaders()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def loadable_kinds(*more):
    """Every kind of file the loaders read, in words: `"a ..., a ... or an ..."`, with `more`
    kinds (in words too) after the loaders' own.

    Example:
    >>> loadable_kinds("a named release").endswith(", an .onnx export or a named release")
    True
    """
    descriptions = [loader.description for loader in loaders()] + list(more)
    return ", ".join(descriptions[:-1]) + " or " + descriptions[-1]


def loader_for(probe):
    """The one loader that recognises the probed file.

    Each loader's `sniff` is asked once, in `order`; the first that claims the file takes it.

    Args:
        probe: the file's `FileProbe`.

    Returns:
        Its `Loader`.

    Raises:
        WeightFileError: no loader recognises the file; the message says what the file is
            and every kind that loads.
    """
    loader = _first_to_claim(probe)
    if loader is None:
        raise WeightFileError(_unrecognised(probe))
    return loader


def recognise(path):
    """The `Loader` that recognises the file at `path`, or None.

    Example (the kind a downloaded file turned out to be):
    `recognise(cached_file).name == "official"`.

    Raises:
        WeightFileError: a file that says it is HDF5 or zip but cannot be read as one.
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
        if loader.misnamed and probe.name.endswith(loader.suffixes):
            return f"{path!r} {loader.misnamed}"
    return (f"{path!r} is neither an HDF5 file (.h5) nor a zip archive (.keras), and no loader "
            f"knows its first bytes; {expected}.")
