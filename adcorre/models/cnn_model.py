"""The Ad-Corre network: a backbone, k L2-normalised embedding heads and a softmax classifier.

`CNNModel().get_model(arch, num_classes, weights)` builds a functional Keras model
with one input (RGB scaled to [0, 1]) and the outputs `[probs, emb_1, ..., emb_k]`,
as the official Ad-Corre code does. Arches:

- `xcp`: Xception cut at `block14_sepconv2_act`, global average pooling (the paper's model).
- `xcp_arm`: the same backbone with the Amend Representation Module in place of the pooling.
- `resnet`: ResNet50 with global average pooling (the official code's second arch).
- `tiny`: a four-block CNN of about 0.9 M parameters (with the heads), only for tests and quick CPU demos;
  it is not part of either paper.
- `resnet18_arm`: ARM's own network (`ResNet18_ARM___RAF`): torchvision's ResNet-18 cut before its
  average pool, then ARM (121 features at 224 px) and `Linear(121, num_classes)`.
- `resnet18`: the same backbone with global average pooling and `Linear(512, num_classes)`
  (ARM's `ResNet18` baseline).

With `num_embeddings=0` the features go straight to the softmax classifier and the model has one
output, `probs`: for `resnet18` / `resnet18_arm` that is the official network exactly, and their
default. Their `weights` may be a PyTorch checkpoint (`torch_checkpoints`).

Only `keras.ops` and Keras layers are used, so the module also runs under the JAX backend.
"""

import os

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
from keras import layers, ops

from adcorre.errors import SettingError, WeightFileError, WeightFileNotFoundError
from adcorre.models import named_weights, torch_checkpoints
from adcorre.models.arm import AmendRepresentation
from adcorre.models.registry import ARCH_NAMES as ARCHES, IMAGENET_MEAN_RGB, IMAGENET_STD_RGB
from adcorre.models.registry import get_arch
from adcorre.settings import setting
from adcorre.models.resnet import resnet18_features

# The arches built on torchvision's ResNet-18, whose weights come as PyTorch files.
TORCH_ARCHES = tuple(name for name in ARCHES if get_arch(name).weights_format == "torch")


@keras.saving.register_keras_serializable(package="adcorre")
class L2Normalize(layers.Layer):
    """Scales each row to unit Euclidean norm (the official `Lambda(tf.math.l2_normalize)`).

    Args:
        axis: axis along which to normalise.
        epsilon: lower bound on the squared norm, so an all-zero row stays finite
            (the same 1e-12 as `tf.math.l2_normalize`).

    Returns:
        A tensor of the input's shape whose rows have norm 1.

    Example:
    >>> keras.ops.convert_to_numpy(L2Normalize()(np.array([[3.0, 4.0]])))
    array([[0.6, 0.8]], dtype=float32)
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = epsilon

    def call(self, inputs):
        squared_norm = ops.sum(ops.square(inputs), axis=self.axis, keepdims=True)
        return inputs * ops.rsqrt(ops.maximum(squared_norm, self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="adcorre")
class ScaleInputs(layers.Layer):
    """Maps RGB in [0, 1] to the range a backbone's ImageNet weights were trained on.

    Keeping this inside the model means every model of the project takes the same
    input (RGB in [0, 1], as the official release files do) and a saved file carries
    its own preprocessing.

    Args:
        mode: `"xception"` (to [-1, 1]), `"caffe"` (to BGR in [0, 255] minus the
            ImageNet channel means, as ResNet50 expects), `"torchvision"` (minus the ImageNet
            mean, over the ImageNet standard deviation, per RGB channel, as torchvision's
            `Normalize` does for its ResNets and ARM's networks) or `"none"`.

    Returns:
        The scaled images, same shape.

    Example:
    >>> keras.ops.convert_to_numpy(ScaleInputs("xception")(np.array([[[[0.0, 0.5, 1.0]]]])))
    array([[[[-1.,  0.,  1.]]]], dtype=float32)
    """

    _CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
    MODES = ("xception", "caffe", "torchvision", "none")

    def __init__(self, mode="xception", **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"ScaleInputs mode must be one of {self.MODES}, got {mode!r}.")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "xception":
            return inputs * 2.0 - 1.0
        if self.mode == "caffe":
            bgr = ops.flip(inputs, axis=-1) * 255.0
            return bgr - ops.convert_to_tensor(self._CAFFE_MEAN_BGR, dtype=bgr.dtype)
        if self.mode == "torchvision":
            mean = ops.convert_to_tensor(IMAGENET_MEAN_RGB, dtype=inputs.dtype)
            std = ops.convert_to_tensor(IMAGENET_STD_RGB, dtype=inputs.dtype)
            return (inputs - mean) / std
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config


def _torch_checkpoint(spec, weights):
    """The PyTorch checkpoint `weights` names for the arch, read; None where it names none."""
    if weights is None:
        return None
    if spec.weights_format != "torch":
        if (weights != "imagenet" and os.path.isfile(weights)
                and torch_checkpoints.is_torch_file(weights)):
            raise SettingError(
                f"{weights!r} is a PyTorch checkpoint; those initialise arch {TORCH_ARCHES[0]!r} "
                f"or {TORCH_ARCHES[1]!r} (torchvision's ResNet-18 or ARM's networks), not "
                f"{spec.name!r}.")
        return None
    if weights == "imagenet":
        weights = named_weights.imagenet_file(spec.name)
    elif not os.path.isfile(weights):
        raise WeightFileNotFoundError(
            f"Weight file not found: {weights!r} (expected a PyTorch .pth or a Keras .h5 file).")
    elif not torch_checkpoints.is_torch_file(weights):
        return None  # a Keras weight file of this arch
    return torch_checkpoints.read_checkpoint(weights)


class CNNModel:
    """Builds the official-style Ad-Corre models (see the module docstring)."""

    def get_model(
        self,
        arch="xcp",
        num_classes=7,
        weights="imagenet",
        input_size=None,
        num_embeddings=None,
        embedding_size=setting("embedding_size").default,
        dropout=setting("dropout").default,
        scale_inputs=True,
        arm_affinity="moving",
    ):
        """Returns the model `image -> [probs, emb_1, ..., emb_k]`.

        Args:
            arch: a name of `registry.ARCH_NAMES`: `"xcp"`, `"xcp_arm"`, `"resnet"`, `"tiny"`,
                `"resnet18"`, `"resnet18_arm"`.
            num_classes: size of the softmax output (7, or 8 for AffectNet with Contempt).
            weights: `None` (random), `"imagenet"` (backbone only: the arch's ImageNet file,
                `ArchSpec.imagenet`, fetched once into the cache by `named_weights`), a name
                of the table of downloadable files (`"xcp.rafdb"`, `"adcorre-rafdb"`: a file of
                this arch; the arch's ImageNet file's name is `"imagenet"`), or the path of a
                weight file of this same architecture (`.h5` or `.weights.h5`). For `resnet18*` also a
                PyTorch file: torchvision's ResNet-18 state dict initialises the backbone, an
                ARM checkpoint (`ResNet18_ARM___RAF` / `ResNet18`) the whole network, which
                then needs `num_embeddings=0` and the checkpoint's class count.
            input_size: side of the square RGB input; `None`: the arch's (224, 64 for `tiny`).
            num_embeddings: k, the number of embedding heads; 0 feeds the features straight
                into the classifier (one output). `None`: the arch's (7; 0 for `resnet18*`).
            embedding_size: d, the width of each embedding.
            dropout: dropout rate on the concatenated embeddings.
            scale_inputs: put the backbone's input scaling in the model so it takes RGB in
                [0, 1]. `False` rebuilds the official graph, which fed [0, 1] straight in.
            arm_affinity: the ARM layer's affinity in inference (`arm.AmendRepresentation`):
                `"moving"`, `"batch"` or `"sample"`.

        Returns:
            A functional `keras.Model` with input `"image"` and `1 + num_embeddings` outputs
            (Keras returns a lone output as a tensor, not a list of one).

        Raises:
            SettingError: an unknown arch, or a size, head count or class count it cannot take.

        Example:
        >>> model = CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=64)
        >>> probs, *embeddings = model(np.zeros((2, 64, 64, 3)))
        >>> tuple(probs.shape), len(embeddings), tuple(embeddings[0].shape)
        ((2, 7), 7, (2, 256))
        """
        spec = get_arch(arch)
        input_size = spec.input_size if input_size is None else input_size
        if input_size < spec.min_input_size:
            raise SettingError(
                f"arch {arch!r} needs input_size >= {spec.min_input_size}, got {input_size}.")
        if num_embeddings is None:
            num_embeddings = spec.default_embeddings
        if num_embeddings < 0 or embedding_size < 1 or num_classes < 2:
            raise SettingError(
                "Expected num_embeddings >= 0, embedding_size >= 1 and num_classes >= 2, got "
                f"{num_embeddings}, {embedding_size}, {num_classes}."
            )
        if weights == "imagenet" and spec.imagenet is None:
            raise SettingError(f"arch {arch!r} has no ImageNet weights; use weights=None.")
        # A name of the table of downloadable files: its file, fetched once (or "imagenet").
        weights = named_weights.initial_weights(arch, weights)
        # A PyTorch file is read before anything is built, so a bad one fails at once.
        checkpoint = _torch_checkpoint(spec, weights)
        backbone_file = None
        if weights == "imagenet" and spec.weights_format == "keras":
            backbone_file = named_weights.imagenet_file(arch)

        image = keras.Input((input_size, input_size, 3), name="image")
        x = ScaleInputs(spec.input_scaling, name="scale_inputs")(image) if scale_inputs else image
        feature_map = BACKBONES[spec.backbone](x, spec, backbone_file)
        features = _pool(spec, feature_map, arm_affinity)
        model = self._add_heads(
            image, features, num_classes, num_embeddings, embedding_size, dropout, arch
        )
        if checkpoint is not None:
            # torchvision's own classifier is ImageNet's: only its backbone is of use here.
            whole = checkpoint.network != "torchvision_resnet18"
            torch_checkpoints.load_into(model, checkpoint, whole=whole)
        elif weights not in (None, "imagenet"):
            self._load_weight_file(model, weights)
        return model

    def _add_heads(self, image, features, num_classes, k, d, dropout, arch):
        if k == 0:
            # As ARM's networks end: the features straight into Linear(features, C) (their
            # drop_rate is 0), with torch's default Linear initialisation, U(+-1/sqrt(fan_in)).
            bound = features.shape[-1] ** -0.5
            probs = layers.Dense(
                num_classes, activation="softmax", name="out", dtype="float32",
                kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform"),
                bias_initializer=keras.initializers.RandomUniform(-bound, bound),
            )(features)
            return keras.Model(image, [probs], name=arch)
        embeddings = []
        for i in range(k):
            suffix = "" if i == 0 else f"_{i}"
            # Names as the official Keras-2 model auto-named them, so weights match by name.
            emb = layers.Dense(d, name=f"dense{suffix}")(features)
            embeddings.append(L2Normalize(name=f"l2_normalize{suffix}", dtype="float32")(emb))
        fused = layers.Concatenate(axis=1, name="concatenate")(embeddings) if k > 1 else embeddings[0]
        fused = layers.Dropout(dropout, name="dropout")(fused)
        # float32 softmax keeps the probabilities exact under mixed precision.
        probs = layers.Dense(num_classes, activation="softmax", name="out", dtype="float32")(fused)
        return keras.Model(image, [probs] + embeddings, name=f"adcorre_{arch}")

    def _load_weight_file(self, model, path):
        if not os.path.isfile(path):
            raise WeightFileNotFoundError(f"Weight file not found: {path!r} (expected a .h5 file).")
        try:
            model.load_weights(path)
        except Exception as error:  # Keras raises several types for a mismatched file.
            raise WeightFileError(
                f"Could not load {path!r} into arch {model.name!r}: {error}. Expected a weight "
                "file saved from the same arch, num_classes and heads; for official or foreign "
                "files use weights_io / TestModels."
            ) from error


def _pool(spec, feature_map, arm_affinity):
    """The arch's pooling of its last 2-D map: global average, or ARM (121 features at 7x7)."""
    if spec.pooling == "arm":
        return AmendRepresentation(affinity=arm_affinity, name=spec.pooling_layer)(feature_map)
    return layers.GlobalAveragePooling2D(name=spec.pooling_layer)(feature_map)


def _xception_map(x, spec, weights):
    backbone = keras.applications.Xception(include_top=False, weights=weights, input_tensor=x)
    return backbone.get_layer(spec.feature_map).output


def _resnet50_map(x, spec, weights):
    backbone = keras.applications.ResNet50(include_top=False, weights=weights, input_tensor=x)
    return backbone.get_layer(spec.feature_map).output


def _resnet18_map(x, spec, weights):
    # Its ImageNet weights are torchvision's file, loaded after the model is built.
    return resnet18_features(x)


def _tiny_map(x, spec, weights):
    """Four conv blocks (32-64-128-256 filters); a fast stand-in for tests and demos."""
    for i, filters in enumerate((32, 64, 128, 256)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"tiny_conv{i}")(x)
        x = layers.BatchNormalization(name=f"tiny_bn{i}")(x)
        x = layers.ReLU(name=f"tiny_relu{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D(2, name=f"tiny_pool{i}")(x)
    return x


# `ArchSpec.backbone` -> a builder `(input tensor, spec, ImageNet weight file or None)` -> the
# last 2-D feature map (the layer `spec.feature_map` names).
BACKBONES = {"xception": _xception_map, "resnet50": _resnet50_map, "resnet18": _resnet18_map,
             "tiny": _tiny_map}
