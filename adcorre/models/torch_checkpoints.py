"""Reading PyTorch checkpoints of ARM's networks and torchvision's ResNet-18 into Keras models.

Three layouts are recognised, by their keys:

- **ARM's networks** (src/Networks.py of sunmusik/Amend-Representation-Module): `ResNet18_ARM___RAF`
  (keys `features.0..7.*`, `arm.de_albino.weight`, `arm.bn.*`, `arm.alpha`, `fc.*` with
  `fc.weight` (C, 121)) and `ResNet18` (`features.*`, `fc.weight` (C, 512)), either as
  train_raf-db.py saves them (`{"iter", "model_state_dict", "optimizer_state_dict"}`) or as a
  bare state dict. Their outputs are RAF-DB's labels minus one (Surprise, Fear, Disgust, Happy,
  Sad, Anger, Neutral).
- **torchvision's ResNet-18** state dict (`conv1.*`, `bn1.*`, `layer1..4.*`, `fc.*`), e.g.
  ImageNet's `resnet18-f37072fd.pth`: the backbone's initialisation.

Files are read with `torch.load(path, map_location="cpu", weights_only=True)`: tensors and plain
containers only, so a pickle that needs code is refused and nothing in it runs. torch is an
optional dependency, imported only when a checkpoint is read. A `"module."` prefix on every key
(`nn.DataParallel`) is dropped; a `{"state_dict": ...}` wrapper is accepted too.

`load_into` copies a checkpoint into a model built by `cnn_model` (layer names `conv1`, `bn1`,
`layer1_0_conv1`, ..., `arm`, `out`), checking every key and every shape: conv weights
`(out, in, kh, kw)` -> `(kh, kw, in, out)`, Linear `(out, in)` -> `(in, out)`, BatchNorm
`weight, bias, running_mean, running_var` -> `gamma, beta, moving_mean, moving_variance`
(`num_batches_tracked` has no Keras counterpart and is skipped). Of this project it imports only
the errors and the arch registry (no Keras); `loaders.pytorch_checkpoint` and
`cnn_model.CNNModel` use it.

Example (needs torch and a checkpoint file):

```python
checkpoint = read_checkpoint("epoch59_acc0.9205.pth")
checkpoint.network, checkpoint.num_classes       # ('resnet18_arm', 7)
model = CNNModel().get_model(checkpoint.arch, checkpoint.num_classes, weights=None,
                             num_embeddings=0, arm_affinity="sample")
load_into(model, checkpoint)
```
"""

import collections.abc
import dataclasses
import os
import pickle
import re
import zipfile

import numpy as np

from adcorre.errors import (MissingDependencyError, WeightFileError, WeightFileNotFoundError,
                            first_line)

# torch.save's legacy (pre-1.6) format starts with its pickled magic number 0x1950a86a20f9469cfc6c.
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
# Keras layer names of the torchvision-layout backbone (resnet.py) and what they stand for.
_BLOCK_LAYER = re.compile(r"^layer([1-4])_(\d+)_(conv[12]|bn[12]|downsample_[01])$")
# ARM's Networks.py keeps torchvision's children in `features`: 0 conv1, 1 bn1, 2 relu,
# 3 maxpool, 4..7 layer1..layer4 (8 avgpool in its ResNet18 class, without weights).
_FEATURES_INDEX = {"conv1": 0, "bn1": 1}
_FIRST_STAGE_INDEX = 4
# Keras weight -> torch parameter, for each kind of layer.
_BATCH_NORM_KEYS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                    ("moving_variance", "running_var"))


class CheckpointError(WeightFileError):
    """A checkpoint that cannot be read or does not fit; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class TorchCheckpoint:
    """The tensors of a PyTorch checkpoint, as NumPy arrays, and what network they belong to.

    Attributes:
        path: the file.
        network: `"resnet18_arm"` or `"resnet18"` (ARM's `ResNet18_ARM___RAF` / `ResNet18`
            classes), or `"torchvision_resnet18"`.
        container: where the state dict was in the file: `"model_state_dict"` (train_raf-db.py's
            checkpoint), `"state_dict"` or `"bare"`.
        num_classes: rows of `fc.weight`, or None when the file has no classifier.
        tensors: torch key (without a `module.` prefix) -> array in torch's layout.
    """

    path: str
    network: str
    container: str
    num_classes: int
    tensors: dict

    @property
    def arch(self):
        """The `cnn_model` arch that holds the whole network: `resnet18_arm` or `resnet18`."""
        return "resnet18_arm" if self.network == "resnet18_arm" else "resnet18"

    @property
    def features_prefix(self):
        """`"features."` for ARM's networks, `""` for torchvision's module names."""
        return "" if self.network == "torchvision_resnet18" else "features."


def is_torch_file(path):
    """Whether `path` holds what `torch.save` writes (its zip archive or its legacy pickle)."""
    with open(path, "rb") as handle:
        head = handle.read(len(_LEGACY_MAGIC))
    names = ()
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return False
    return looks_like_torch(head, names)


def looks_like_torch(head, zip_members):
    """Whether a file is what `torch.save` writes, from its first bytes and, for a zip
    archive, its member names (`loaders.pytorch_checkpoint` sniffs with it).

    The legacy pickle starts with torch's magic number; the zip archive has a
    `<name>/data.pkl` member, which a Keras `.keras` zip never has.

    Example:
    >>> looks_like_torch(b"PK", ["archive/data.pkl", "archive/version"])
    True
    """
    return (head.startswith(_LEGACY_MAGIC)
            or any(name == "data.pkl" or name.endswith("/data.pkl") for name in zip_members))


def _is_torchscript(path):
    """torch.jit.save's archives hold a program (`code/`, `constants.pkl`), not a state dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name
                   for name in archive.namelist())


def _import_torch(path):
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(
            f"Reading the PyTorch checkpoint {path!r} needs torch, an optional dependency of this "
            "project: pip install torch (the CPU build is enough: pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu)."
        ) from None
    return torch


def _torch_load(path):
    torch = _import_torch(path)
    try:
        return torch, torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if refused or "weights only" in str(error).lower():
            what = f" ({refused.group(1)})" if refused else ""
            raise CheckpointError(
                f"{path!r} needs code to unpickle{what}; this loader reads tensors and plain "
                "containers only (torch.load with weights_only=True) and ran nothing from it. "
                "Expected a state dict saved with torch.save(model.state_dict()) or "
                "{'model_state_dict': ...}."
            ) from None
        raise CheckpointError(
            f"{path!r} is not a readable PyTorch checkpoint ({first_line(error)})."
        ) from None
    except Exception as error:  # torch raises RuntimeError, KeyError, EOFError... for a bad file
        raise CheckpointError(
            f"{path!r} cannot be read as a PyTorch checkpoint ({type(error).__name__}: "
            f"{first_line(error)}); it may be truncated. Expected a complete file written by "
            "torch.save."
        ) from None


def _unwrap(path, loaded):
    """The state dict inside what torch.load returned, and where it was."""
    if not isinstance(loaded, collections.abc.Mapping):
        raise CheckpointError(
            f"{path!r} holds a {type(loaded).__name__}, not a state dict. Expected "
            "torch.save(model.state_dict()) or {'model_state_dict': model.state_dict(), ...}."
        )
    for container in ("model_state_dict", "state_dict"):
        if container in loaded:
            inner = loaded[container]
            if not isinstance(inner, collections.abc.Mapping):
                raise CheckpointError(
                    f"{path!r}: key {container!r} holds a {type(inner).__name__}, not a state dict."
                )
            return inner, container
    return loaded, "bare"


def read_checkpoint(path):
    """Reads a PyTorch checkpoint of ARM's networks or of torchvision's ResNet-18.

    Args:
        path: a file written by `torch.save` (see the module docstring for the layouts).

    Returns:
        A `TorchCheckpoint`.

    Raises:
        MissingDependencyError: torch is not installed (the message names the pip command).
        CheckpointError: not a torch file, truncated, a TorchScript program, needs code to
            unpickle, not a state dict, a value that is not a tensor, or none of the known
            networks.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise WeightFileNotFoundError(f"PyTorch checkpoint not found: {path!r}.")
    if not is_torch_file(path):
        raise CheckpointError(
            f"{path!r} is not a PyTorch file (neither the zip archive torch.save writes nor its "
            "legacy pickle); it may be truncated. Expected a .pth file written by torch.save."
        )
    if _is_torchscript(path):
        raise CheckpointError(
            f"{path!r} is a TorchScript archive (torch.jit.save: a program, not a state dict); "
            "this loader runs no code from a file. Expected torch.save(model.state_dict())."
        )
    torch, loaded = _torch_load(path)
    state, container = _unwrap(path, loaded)
    if not state:
        raise CheckpointError(f"{path!r} holds an empty state dict.")
    keys = [str(key) for key in state]
    # nn.DataParallel saves every key under "module."; the network inside is the same.
    strip = "module." if all(key.startswith("module.") for key in keys) else ""
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path!r}: key {key!r} holds a {type(value).__name__}, not a tensor; expected a "
                "state dict of tensors."
            )
        value = value.detach().cpu()
        tensors[str(key)[len(strip):]] = (
            value.to(torch.float32).numpy() if value.is_floating_point() else value.numpy())
    network = _network_of(path, tensors)
    classifier = tensors.get("fc.weight")
    num_classes = None
    if classifier is not None and classifier.ndim == 2:
        num_classes = int(classifier.shape[0])
    return TorchCheckpoint(path=path, network=network, container=container,
                           num_classes=num_classes, tensors=tensors)


def _network_of(path, tensors):
    if any(key.startswith("features.") for key in tensors):
        return "resnet18_arm" if any(key.startswith("arm.") for key in tensors) else "resnet18"
    if "conv1.weight" in tensors:
        return "torchvision_resnet18"
    shown = ", ".join(sorted(tensors)[:5])
    raise CheckpointError(
        f"{path!r} holds none of the networks this loader knows (keys {shown}, ...). Expected "
        "ARM's ResNet18_ARM___RAF or ResNet18 (keys features.*, arm.*, fc.*) or torchvision's "
        "ResNet-18 (conv1.*, bn1.*, layer1..4.*, fc.*)."
    )


# -------------------------------------------------------------------------------------- loading


def _torch_module(layer_name, features_prefix):
    """The torch module path of a Keras layer of the torchvision-layout backbone, or None."""
    if layer_name in _FEATURES_INDEX:
        return (f"features.{_FEATURES_INDEX[layer_name]}" if features_prefix else layer_name)
    match = _BLOCK_LAYER.match(layer_name)
    if match is None:
        return None
    stage, block, part = match.groups()
    part = part.replace("_", ".")
    if features_prefix:
        return f"features.{_FIRST_STAGE_INDEX + int(stage) - 1}.{block}.{part}"
    return f"layer{stage}.{block}.{part}"


def _conv_to_keras(weight):
    return np.transpose(weight, (2, 3, 1, 0))


def _linear_to_keras(weight):
    return np.transpose(weight)


def _torch_shape(variable_shape, transform):
    """The torch shape that `transform` turns into a Keras variable of `variable_shape`."""
    shape = tuple(variable_shape)
    if transform is _conv_to_keras:
        return (shape[3], shape[2], shape[0], shape[1])
    if transform is _linear_to_keras:
        return shape[::-1]
    return shape


def _layer_targets(layer, module):
    """[(torch key, Keras variable, transform)] for one Keras layer standing for `module`."""
    kind = type(layer).__name__
    if kind == "Conv2D":
        return [(f"{module}.weight", layer.kernel, _conv_to_keras)]
    if kind == "BatchNormalization":
        return [(f"{module}.{name}", getattr(layer, attribute), None)
                for attribute, name in _BATCH_NORM_KEYS]
    if kind == "Dense":
        return [(f"{module}.weight", layer.kernel, _linear_to_keras),
                (f"{module}.bias", layer.bias, None)]
    if hasattr(layer, "de_albino_kernel"):  # arm.AmendRepresentation
        targets = [(f"{module}.de_albino.weight", layer.de_albino_kernel, _conv_to_keras),
                   (f"{module}.alpha", layer.alpha, None)]
        return targets + _layer_targets(layer.batch_norm, f"{module}.bn")
    raise CheckpointError(f"Keras layer {layer.name!r} ({kind}) has no PyTorch counterpart here.")


def _modules_to_load(model, checkpoint, whole):
    """{Keras layer: torch module path} for the layers `load_into` fills."""
    modules, unmatched = {}, []
    for layer in model.layers:
        if not layer.weights:
            continue
        module = _torch_module(layer.name, checkpoint.features_prefix)
        if module is None and whole:
            module = {"arm": "arm", "out": "fc"}.get(layer.name)
        if module is not None:
            modules[layer] = module
        elif whole:
            unmatched.append(layer.name)
    if unmatched:
        raise CheckpointError(
            f"{checkpoint.path!r} holds a whole {checkpoint.network} network, but the model "
            f"{model.name!r} also has layers it lacks ({', '.join(unmatched[:5])}). Build the "
            "network alone (num_embeddings=0) to load it."
        )
    return modules


def load_into(model, checkpoint, whole=True):
    """Copies a checkpoint's tensors into a `cnn_model` ResNet-18 model, checking keys and shapes.

    Args:
        model: a model from `cnn_model.CNNModel().get_model("resnet18" or "resnet18_arm", ...)`.
        checkpoint: a `TorchCheckpoint` (see `read_checkpoint`).
        whole: True: the model is the checkpoint's whole network (backbone, ARM, classifier
            `fc` -> the layer `out`); every key of the checkpoint must be used and every
            weighted layer of the model filled. False: only the backbone (`conv1`, `bn1`,
            layer1..4) is copied, the checkpoint's `fc` and `arm` are left out, and the rest of
            the model keeps its initialisation.

    Raises:
        CheckpointError: a missing, extra or mis-shaped key (named, with the file), or a model
            that is not the checkpoint's network.
    """
    if whole and checkpoint.arch != ("resnet18_arm" if _has_layer(model, "arm") else "resnet18"):
        raise CheckpointError(
            f"{checkpoint.path!r} holds a {checkpoint.network} network; the model "
            f"{model.name!r} is not one (build arch {checkpoint.arch!r} to load it)."
        )
    targets = []
    for layer, module in _modules_to_load(model, checkpoint, whole).items():
        targets.extend(_layer_targets(layer, module))
    expected = {key for key, _, _ in targets}
    present = set(checkpoint.tensors)
    missing = sorted(expected - present)
    if missing:
        raise CheckpointError(
            f"{checkpoint.path!r} lacks {len(missing)} key(s) the {checkpoint.network} network "
            f"needs: {_listed(missing)}."
        )
    # What a checkpoint may hold beyond the copied tensors: BatchNorm's step counters, and for
    # a backbone-only copy the network's own head.
    modules = {key.rsplit(".", 1)[0] for key in expected}
    spare = {f"{module}.num_batches_tracked" for module in modules}
    if not whole:
        spare |= {key for key in present if key.startswith(("fc.", "arm."))}
    extra = sorted(present - expected - spare)
    if extra:
        raise CheckpointError(
            f"{checkpoint.path!r} has {len(extra)} key(s) the {checkpoint.network} network does "
            f"not have: {_listed(extra)}."
        )
    values = []
    for key, variable, transform in targets:
        array = checkpoint.tensors[key]
        wanted = _torch_shape(variable.shape, transform)
        if tuple(array.shape) != wanted:
            raise CheckpointError(
                f"{checkpoint.path!r}: key {key!r} has shape {tuple(array.shape)}; the "
                f"{model.name} model expects {wanted}."
            )
        values.append((variable, transform(array) if transform else array))
    for variable, value in values:
        variable.assign(value.astype(variable.dtype))


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def _listed(keys, limit=5):
    return ", ".join(repr(key) for key in keys[:limit]) + (", ..." if len(keys) > limit else "")
