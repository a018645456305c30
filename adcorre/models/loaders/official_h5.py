"""Loader of the official Ad-Corre releases (`AffectNet_6336.h5`, `RafDB_8696.h5`,
`Fer2013_7203.h5`): Keras 2 HDF5 files written by TF 2.x, and their weights-only twins.

Their L2 normalisation is a `Lambda` whose function is Python bytecode (of another Python
version), so Keras cannot and must not deserialise them. `sniff` recognises the graph from the
`model_config` attribute read as data (`official_files.spec_from_config`: pooling, k Dense +
Lambda heads, Concatenate, Dropout, `out`), or a weights-only file (`save_weights`: a root
`layer_names`, no `model_config`). `load` rebuilds that graph in code with `cnn_model.CNNModel`
(`scale_inputs=False`: they take RGB in [0, 1] at 224 px) and copies every array with h5py from
the probe's open file (`official_files.copy_weights`, every count and shape checked).

Example (needs a release file, see trained_models/README.md):

```python
with FileProbe("RafDB_8696.h5") as probe:
    model, info = load(probe)
info.arch, info.num_embeddings, info.input_size   # ('xcp', 7, (224, 224))
```
"""

from adcorre.config import label_names
from adcorre.errors import WeightFileError
from adcorre.models import cnn_model, file_checks, official_files
from adcorre.models.loaders import Loader, register
from adcorre.models.model_info import model_info, square_size, unnamed_labels


def sniff(probe):
    """An HDF5 file whose `model_config` is the Ad-Corre graph, or that holds only weights
    (`layer_names` at its root, no `model_config`).

    This project's files never match: their heads are `L2Normalize` layers, not the official
    `Lambda`s, and they always carry a `model_config`.
    """
    if not probe.is_hdf5:
        return False
    if probe.model_config is not None:
        return official_files.graph_of(probe) is not None
    return "layer_names" in probe.attributes


def load(probe, *, labels=None, input_size=None, arm_affinity=None):
    """The official graph rebuilt in code and filled with the file's weights.

    Args:
        probe: the file's `FileProbe` (`sniff` recognised it).
        input_size: the side for weights-only files, which do not say it (default 224).
        labels, arm_affinity: unused (the labels follow the class count; no ARM layer).
    """
    path = probe.path
    file_checks.check_layer_lists(path, probe.hdf5)
    if probe.model_config is None:
        spec = _weights_only_graph(probe)
    else:
        spec = official_files.graph_of(probe)
    if spec is None:
        raise WeightFileError(f"{path!r}: its model_config is not the Ad-Corre graph; expected "
                              "an official Ad-Corre file (keras_classifier reads other models).")
    size = square_size(path, input_size, fixed=spec.input_size)
    try:
        model = cnn_model.CNNModel().get_model(
            spec.arch, num_classes=spec.num_classes, weights=None, input_size=size[0],
            num_embeddings=spec.num_embeddings, embedding_size=spec.embedding_size,
            scale_inputs=False)
    except ValueError as error:
        raise WeightFileError(f"{path!r}: cannot rebuild its graph: {error}") from None
    # Our head i is named like the official code's first session named it; the file's may differ.
    renamed = {("dense" if i == 0 else f"dense_{i}"): source
               for i, source in enumerate(spec.head_layers)}
    official_files.copy_weights(path, probe.hdf5, model, renamed)
    labels = (label_names(spec.num_classes) if spec.num_classes in (7, 8)
              else unnamed_labels(spec.num_classes))
    return model, model_info(
        path, LOADER.name, labels=labels, input_size=size, channels=3,
        num_embeddings=spec.num_embeddings, arch=spec.arch,
        metadata={"keras_version": file_checks.as_text(probe.attributes.get("keras_version", "")),
                  "embedding_size": spec.embedding_size, "head_layers": list(spec.head_layers),
                  "weights_only": spec.input_size is None})


def _weights_only_graph(probe):
    spec = official_files.spec_from_weights(probe.hdf5)
    if spec is None:
        raise WeightFileError(
            f"{probe.path!r} holds only weights (no model_config) and they are not the Ad-Corre "
            "graph (Xception or ResNet50 + embedding heads + 'out'). Expected a full model file "
            "(model.save) or an official Ad-Corre weights file.")
    return spec


LOADER = register(Loader(
    name="official", order=20, suffixes=(".h5", ".hdf5"),
    description="an official Ad-Corre .h5 release (or its weights-only file)", sniff=sniff,
    load=load))
