"""The official Ad-Corre release files: their graph recognised as data, their weights copied.

`AffectNet_6336.h5`, `RafDB_8696.h5` and `Fer2013_7203.h5` are Keras 2 HDF5 files whose L2
normalisation is a `Lambda` holding Python bytecode, so Keras must not deserialise them.
`spec_from_config` reads the graph off the `model_config` JSON (or `spec_from_weights` off the
layer names of a weights-only file) as plain data; `weights_io` rebuilds that graph in code
(`cnn_model`), and `copy_weights` copies every array into it with h5py, pairing layers by name
(and Keras' session-dependent auto names by kind and graph order), every count and shape checked.
Nothing here imports TensorFlow or runs anything stored in the file.

Example (needs an official release file, see trained_models/README.md):

```python
with h5py.File("RafDB_8696.h5", "r") as file:
    spec = spec_from_config(json.loads(file.attrs["model_config"]))
spec.arch, spec.num_embeddings   # ('xcp', 7)
```
"""

import dataclasses
import re

import numpy as np

from adcorre.errors import WeightFileError
from adcorre.models.registry import ARCHS

# The layer the official graph's pooling reads, per backbone (as keras.applications names them).
_OFFICIAL_BACKBONE_ENDS = {spec.feature_map: spec.name for spec in ARCHS.values() if spec.official}
# Layer names that only one backbone has: used to recognise weights-only files.
_WEIGHTS_ONLY_MARKERS = {"block14_sepconv2": "xcp", "conv5_block3_3_conv": "resnet"}
# Names Keras generates for layers built without one (keras.applications leaves a few unnamed).
_AUTO_NAME = re.compile(r"^(conv2d|batch_normalization|dense)(?:_\d+)?$")


class OfficialFileError(WeightFileError):
    """An official-looking file whose weights do not fit the graph it names."""


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)

@dataclasses.dataclass
class OfficialSpec:
    """What an official file's graph is: enough to rebuild it with `cnn_model`."""

    arch: str
    num_classes: int
    num_embeddings: int
    embedding_size: int
    head_layers: list  # the file's head Dense names, in the order the concatenation reads them
    input_size: tuple = None  # None for weights-only files


def _layers_by_name(config):
    layers = config.get("config", {}).get("layers", [])
    return {layer.get("name") or layer.get("config", {}).get("name"): layer for layer in layers}


def _inbound_names(layer):
    """Names of the layers feeding `layer`, in order (Keras 2 and Keras 3 config formats)."""
    names = []

    def walk(node):
        if isinstance(node, dict):
            history = node.get("config", {}).get("keras_history") if "config" in node else None
            if history:
                names.append(history[0])
                return
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            # Keras 2: [layer_name, node_index, tensor_index, kwargs].
            if len(node) >= 3 and isinstance(node[0], str) and isinstance(node[1], int):
                names.append(node[0])
                return
            for value in node:
                walk(value)

    walk(layer.get("inbound_nodes", []))
    return names


def spec_from_config(config):
    """Reads the official graph off a `model_config` (as data); None if it is not that graph.

    The graph is followed from the layer named `out` backwards: Dropout, Concatenate (absent for
    k = 1), one Lambda per head, one Dense per head, one shared GlobalAveragePooling2D, and the
    backbone layer it reads. Heads are taken in the order the concatenation lists them, whatever
    their auto-generated names (`dense_7` in a session that built other models first).
    """
    layers = _layers_by_name(config)
    out = layers.get("out")
    if out is None or out.get("class_name") != "Dense":
        return None

    def single_input(layer):
        names = _inbound_names(layer)
        return layers.get(names[0]) if len(names) == 1 else None

    node = single_input(out)
    if node is not None and node.get("class_name") == "Dropout":
        node = single_input(node)
    if node is None:
        return None
    if node.get("class_name") == "Concatenate":
        normalisers = [layers.get(name) for name in _inbound_names(node)]
    else:
        normalisers = [node]
    heads, pools = [], set()
    for normaliser in normalisers:
        if normaliser is None or normaliser.get("class_name") != "Lambda":
            return None
        head = single_input(normaliser)
        if head is None or head.get("class_name") != "Dense":
            return None
        pool = single_input(head)
        if pool is None or pool.get("class_name") != "GlobalAveragePooling2D":
            return None
        heads.append(head)
        pools.add(pool["config"]["name"])
    if len(pools) != 1:
        return None
    backbone_end = _inbound_names(layers[pools.pop()])
    arch = _OFFICIAL_BACKBONE_ENDS.get(backbone_end[0]) if len(backbone_end) == 1 else None
    if arch is None:
        return None
    embedding_sizes = {int(head["config"]["units"]) for head in heads}
    if len(embedding_sizes) != 1:
        return None
    input_size = None
    for layer in layers.values():
        if layer.get("class_name") == "InputLayer":
            shape = layer["config"].get("batch_input_shape") or layer["config"].get("batch_shape")
            if shape and len(shape) == 4 and None not in shape[1:3]:
                input_size = (int(shape[1]), int(shape[2]))
    return OfficialSpec(
        arch=arch,
        num_classes=int(out["config"]["units"]),
        num_embeddings=len(heads),
        embedding_size=embedding_sizes.pop(),
        head_layers=[head["config"]["name"] for head in heads],
        input_size=input_size,
    )


def graph_of(probe):
    """The official graph of a probed file's `model_config` (`spec_from_config`), or None.

    Read once per probe (`FileProbe.derived`): the official loader's sniff and load, and the
    classifier loader's sniff (which takes the Keras files that are not this graph), share it.
    """
    if probe.model_config is None:
        return None
    return probe.derived("official_spec", lambda probe: spec_from_config(probe.model_config))


def spec_from_weights(file):
    """The official graph read off a weights-only file (save_weights); None if it is not that graph.

    With no graph in the file, heads are the 2-D kernels other than `out`, in the order the
    file lists its layers: Keras writes `model.layers`, which follows the graph, so this is the
    concatenation order for the official code.

    Args:
        file: the open `h5py.File`.
    """
    names = [_text(n) for n in file.attrs["layer_names"]]
    arch = None
    for marker, candidate in _WEIGHTS_ONLY_MARKERS.items():
        if marker in names:
            arch = candidate
    if arch is None or "out" not in names:
        return None
    heads, embedding_sizes = [], set()
    # Shapes only: the arrays themselves are read once, by copy_weights.
    for name in names:
        shapes = _layer_weight_shapes(file, name)
        if name != "out" and len(shapes) == 2 and len(shapes[0]) == 2:
            heads.append(name)
            embedding_sizes.add(shapes[0][1])
    out_kernel_shape = _layer_weight_shapes(file, "out")[0]
    if not heads or len(embedding_sizes) != 1:
        return None
    embedding_size = embedding_sizes.pop()
    if out_kernel_shape[0] != embedding_size * len(heads):
        return None
    return OfficialSpec(
        arch=arch,
        num_classes=int(out_kernel_shape[1]),
        num_embeddings=len(heads),
        embedding_size=int(embedding_size),
        head_layers=heads,
    )


def _layer_weight_shapes(group, name):
    """The shapes of the arrays `_layer_weights` would read, without reading them."""
    layer = group[name]
    return [layer[_text(w)].shape for w in layer.attrs.get("weight_names", [])]


def _layer_weights(group, name):
    """The arrays a Keras HDF5 weight group stores for layer `name`, in stored order."""
    layer = group[name]
    return [np.asarray(layer[_text(w)]) for w in layer.attrs.get("weight_names", [])]


def _short_name(weight_name):
    """`block1_conv1/kernel:0` -> `kernel`."""
    return _text(weight_name).split("/")[-1].split(":")[0]


def _auto_kind(name):
    """`conv2d_3` -> `conv2d` for names Keras generated (they depend on what the session built first)."""
    match = _AUTO_NAME.match(name)
    return match.group(1) if match else None


def _pair_layers(path, model, stored, renamed):
    """Source layer name for each weighted layer of `model`.

    Explicit names (`block1_conv1`, `out`) pair by name and the heads by `renamed`. Names Keras
    generated (Xception's residual `conv2d_N` / `batch_normalization_N`) differ between sessions,
    so those pair in graph order within their kind, shapes checked afterwards.
    """
    pairs, leftover_targets = {}, {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name in renamed:
            pairs[layer.name] = renamed[layer.name]
        elif _auto_kind(layer.name):
            leftover_targets.setdefault(_auto_kind(layer.name), []).append(layer.name)
        else:
            pairs[layer.name] = layer.name
    taken = set(pairs.values())
    leftover_sources = {}
    for name in stored:
        if name not in taken and _auto_kind(name):
            leftover_sources.setdefault(_auto_kind(name), []).append(name)
    for kind, targets in leftover_targets.items():
        sources = leftover_sources.get(kind, [])
        if len(sources) != len(targets):
            raise OfficialFileError(
                f"{path!r} has {len(sources)} unnamed {kind} layers with weights; the rebuilt "
                f"{model.name} graph has {len(targets)}. Expected an official Ad-Corre file."
            )
        pairs.update(zip(targets, sources))
    return pairs


def copy_weights(path, file, model, renamed):
    """Copies every weighted layer of `model` from the open file, checking names, counts and
    shapes (`path` names the file in the errors)."""
    group = file["model_weights"] if "model_weights" in file else file
    stored = [
        _text(n) for n in group.attrs.get("layer_names", [])
        if len(group[_text(n)].attrs.get("weight_names", [])) > 0
    ]
    pairs = _pair_layers(path, model, stored, renamed)
    for layer in model.layers:
        if not layer.weights:
            continue
        source = pairs[layer.name]
        if source not in stored:
            raise OfficialFileError(
                f"{path!r} has no weights for layer {source!r}, which the rebuilt "
                f"{model.name} graph needs; expected an official Ad-Corre file."
            )
        weight_names = [_short_name(n) for n in group[source].attrs["weight_names"]]
        arrays = _layer_weights(group, source)
        targets = [v.path.split("/")[-1] for v in layer.weights]
        if len(arrays) != len(targets):
            raise OfficialFileError(
                f"{path!r}: layer {source!r} stores {len(arrays)} weights ({weight_names}); "
                f"expected {len(targets)} ({targets})."
            )
        if sorted(weight_names) == sorted(targets) and weight_names != targets:
            arrays = [arrays[weight_names.index(t)] for t in targets]
        for variable, array, target in zip(layer.weights, arrays, targets):
            if tuple(variable.shape) != array.shape:
                raise OfficialFileError(
                    f"{path!r}: weight {source}/{target} has shape {array.shape}; the rebuilt "
                    f"graph expects {tuple(variable.shape)}."
                )
        layer.set_weights(arrays)
    sources = set(pairs.values())
    unused = [name for name in stored if name not in sources]
    if unused:
        raise OfficialFileError(
            f"{path!r} holds weights for layers the Ad-Corre graph does not have: "
            f"{unused[:5]}{'...' if len(unused) > 5 else ''}."
        )


