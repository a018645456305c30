"""What the two loaders of Keras' own files share (`project_file`, `keras_classifier`): the file
checked before Keras reads a byte of it, then Keras' loader in safe mode.

`checked_config` refuses, from the probe's open file, what Keras must not be given: an HDF5
layer list that names a layer twice or a layer it lacks, an archive whose directory unpacks past
the caps, a config that holds code or layers no one defines. `load_keras` then runs
`keras.models.load_model(compile=False, safe_mode=True)` with this project's layers registered,
its many error types turned into one `WeightFileError`.

Example (a file `save_model` wrote):

```python
with FileProbe("best.keras") as probe:
    checked_config(probe)
    model = load_keras(probe, "a model saved by this project")
```
"""

import contextlib
import os
import shutil
import tempfile

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras

from adcorre.errors import WeightFileError, first_line
from adcorre.models import cnn_model  # noqa: F401  (registers L2Normalize, ScaleInputs and ARM)
from adcorre.models import file_checks

KERAS_CONFIG_MEMBER = "config.json"


def checked_config(probe):
    """The model config of a Keras file, checked: the HDF5 layer lists, the archive's directory,
    no code, no unknown layers. Returns the parsed config (None for an HDF5 file without one)."""
    if probe.is_hdf5:
        file_checks.check_layer_lists(probe.path, probe.hdf5)
        config = probe.model_config
    else:
        file_checks.check_archive_directory(probe.path, probe.archive)
        config = file_checks.parse_json(probe.path, file_checks.read_member(
            probe.path, probe.archive, KERAS_CONFIG_MEMBER, file_checks.MAX_CONFIG_BYTES))
    if config is not None:
        file_checks.reject_foreign_layers(probe.path, config)
    return config


def load_keras(probe, what):
    """`keras.models.load_model` in safe mode; a `.keras` archive unpacks into a temporary
    folder of our own, removed whatever happens.

    Keras picks its reader by the file's suffix; the content has decided the kind already, so
    a file named otherwise (a release saved without a suffix, a cache entry) is read through a
    link that carries the suffix Keras wants.

    Args:
        probe: the file's `FileProbe` (HDF5 or zip).
        what: the kind of file, as the error words it (`"a Keras image classifier"`).
    """
    path = probe.path
    wanted = (".h5", ".hdf5") if probe.is_hdf5 else (".keras",)
    unpacking = contextlib.nullcontext() if probe.is_hdf5 else file_checks.private_temp_folder()
    try:
        with unpacking:
            if probe.name.endswith(wanted):
                return keras.models.load_model(path, compile=False, safe_mode=True)
            with tempfile.TemporaryDirectory(prefix="adcorre-load-") as folder:
                named = os.path.join(folder, "model" + wanted[0])
                try:
                    os.symlink(os.path.abspath(path), named)
                except OSError:  # no symbolic links here (some Windows set-ups): a copy
                    shutil.copyfile(path, named)
                return keras.models.load_model(named, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises ValueError, TypeError, KeyError, OSError...
        raise WeightFileError(
            f"Could not load {path!r} as {what}: {type(error).__name__}: {first_line(error)}"
        ) from None
