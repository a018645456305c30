"""Loader of foreign Keras image classifiers: any other single-input Keras model made only of
built-in Keras layers, `.h5` or `.keras` (for example the `fer` package's 64 x 64 grey
`emotion_model.hdf5`, which takes [-1, 1]).

It takes the Keras files the more specific loaders leave: a model config (the HDF5 attribute
`model_config`, or a `.keras` archive's `config.json`) without this project's metadata
(`project_metadata`) and not the official Ad-Corre graph (`official_files.graph_of`). Input size
and channels come from the model; label names and input range from the caller (`class_0..` and
[0, 1] otherwise, which `TestModels` says in a note).

Example:
>>> import os, tempfile, keras
>>> from adcorre.models.file_probe import FileProbe
>>> inputs = keras.Input((40, 40, 1))
>>> scores = keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inputs))
>>> path = os.path.join(tempfile.mkdtemp(), "grey.keras")
>>> keras.Model(inputs, scores).save(path)
>>> with FileProbe(path) as probe:
...     model, info = load(probe) if sniff(probe) else (None, None)
>>> info.kind, info.input_size, info.channels, info.labels[:2]
('classifier', (40, 40), 1, ('class_0', 'class_1'))
"""

from adcorre.models import keras_files, official_files, project_metadata
from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import describe_keras


def sniff(probe):
    """A Keras model config that is neither this project's file nor the official graph."""
    if probe.is_zip:
        return (keras_files.KERAS_CONFIG_MEMBER in probe.members
                and project_metadata.METADATA_MEMBER not in probe.members)
    return (probe.model_config is not None
            and project_metadata.METADATA_ATTRIBUTE not in probe.attributes
            and official_files.graph_of(probe) is None)


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    """The classifier, read by Keras in safe mode once its config passed the checks.

    Args:
        probe: the file's `FileProbe` (`sniff` recognised it).
        input_size: for models whose input size is open (fully convolutional; default 224).
        labels, arm_affinity: unused here (`load_model` applies the caller's labels).
    """
    keras_files.checked_config(probe)
    model = keras_files.load_keras(probe, "a Keras image classifier")
    return model, describe_keras(model, probe.path, LOADER.name, input_size=input_size,
                                 num_embeddings=0, range_assumed=True)


LOADER = register(Loader(
    name="classifier", order=30, suffixes=(".h5", ".hdf5", ".keras"),
    description="a Keras .h5 / .keras image classifier of built-in layers", sniff=sniff,
    load=load))
