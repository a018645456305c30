"""Loader of this project's own files: the `.h5` / `.keras` files `save_model` writes.

Recognised by the metadata `save_model` stores in them (`project_metadata`): the HDF5 root
attribute `adcorre_metadata`, or the `.keras` archive's member `adcorre_metadata.json`. The
model is Keras' own file, read by Keras in safe mode once `keras_files.checked_config` passed
it; label names, input range and arch come from the metadata, every field checked.

Example:
>>> from adcorre.models.cnn_model import CNNModel
>>> from adcorre.models.weights_io import save_model
>>> from adcorre.models.file_probe import FileProbe
>>> from adcorre.config import EXPRESSIONS_7
>>> path = save_model(CNNModel().get_model("tiny", weights=None, input_size=32), "tiny.h5",
...                   labels=EXPRESSIONS_7, arch="tiny")
>>> with FileProbe(path) as probe:
...     model, info = load(probe) if sniff(probe) else (None, None)
>>> info.loader, info.arch, info.input_size
('project', 'tiny', (32, 32))
"""

from adcorre.models import keras_files, project_metadata
from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import describe_keras


def sniff(probe):
    """An HDF5 file with the `adcorre_metadata` attribute, or a zip with its JSON member."""
    return (project_metadata.METADATA_ATTRIBUTE in probe.attributes
            or project_metadata.METADATA_MEMBER in probe.members)


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    """The model `save_model` wrote, and its `ModelInfo` from the file's metadata.

    Args:
        probe: the file's `FileProbe` (`sniff` recognised it).
        labels, input_size, arm_affinity: unused: the file says all three (`load_model`
            applies the caller's labels and affinity to what this returns).
    """
    keras_files.checked_config(probe)
    metadata = project_metadata.read_metadata(probe)
    model = keras_files.load_keras(probe, "a model saved by this project")
    return model, describe_keras(
        model, probe.path, LOADER.name, labels=tuple(metadata["labels"]),
        input_range=metadata["input_range"], arch=metadata.get("arch"),
        metadata={k: v for k, v in metadata.items() if k not in ("labels", "input_range")})


LOADER = register(Loader(
    name="project", order=10, suffixes=(".h5", ".hdf5", ".keras"),
    description="a .h5 / .keras file saved by this project", sniff=sniff, load=load))
