"""One loader per kind of model file; `weights_io.load_model` hands each file to one of them.

`LOADERS` lists the loader modules in the order their `sniff` is asked (their `ORDER`):

| `NAME` | module | `ORDER` | recognised by |
| --- | --- | --- | --- |
| `project` | `project_file` | 10 | this project's metadata (HDF5 attribute or `.keras` member) |
| `official` | `official_h5` | 20 | the official Ad-Corre graph in `model_config`, or a weights-only HDF5 |
| `classifier` | `keras_classifier` | 30 | any other Keras model config (`model_config`, `config.json`) |
| `torch` | `pytorch_checkpoint` | 40 | torch.save's legacy magic number, or a zip with `data.pkl` |
| `tflite` | `tflite_export` | 50 | the `TFL3` FlatBuffer identifier |
| `onnx` | `onnx_export` | 60 | an ONNX ModelProto's first fields |

Shared by them: `probe.FileProbe` (the file read once: first bytes, HDF5 root attributes, zip
directory), `model_info` (`ModelInfo` and the one function that builds it), `keras_files` (what
the two Keras-file loaders check and run). `registry` finds the loaders and picks one.

Adding a file kind is one module here: `NAME`, `ORDER`, `SUFFIXES`, `DESCRIPTION`, `sniff(probe)`
and `load(probe, *, labels=None, input_size=None, arm_affinity=None)` (registry's docstring
says what each means); the registry finds it by itself (docs/architecture.md, "Adding a file
kind").

Example:
>>> from adcorre.models import loaders
>>> [loader.NAME for loader in loaders.LOADERS][:3]
['project', 'official', 'classifier']

Nothing is imported until a name below is first used (the loaders load Keras).
"""

import importlib

# Public name -> (module, attribute); LOADERS is the registry's `loaders()` tuple.
_PUBLIC = {
    "LOADERS": ("adcorre.models.loaders.registry", "loaders"),
    "FileProbe": ("adcorre.models.loaders.probe", "FileProbe"),
    "ModelInfo": ("adcorre.models.loaders.model_info", "ModelInfo"),
    "loader_for": ("adcorre.models.loaders.registry", "loader_for"),
    "recognise": ("adcorre.models.loaders.registry", "recognise"),
}


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    return value() if name == "LOADERS" else value
