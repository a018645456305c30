"""Where the network looks: Grad-CAM (Selvaraju et al., ICCV 2017) for any arch of the project.

The class score's gradient with respect to the last convolutional feature map A (n, h, w, c)
weighs its channels: `weight_c = mean over h, w of d score / d A_c`, and the map is
`ReLU(sum_c weight_c * A_c)`, scaled to [0, 1] and upsampled to the picture. The score is the
class logit (the input of the final softmax), as the paper uses: a softmax probability near 1
has a vanishing gradient.

The feature map of a registered arch is its registry record's (`block14_sepconv2_act` in
Xception, `xcp`, and the map ARM takes in `xcp_arm`; `conv5_block3_out` in ResNet50;
`layer4_1_relu2` in ResNet-18; `tiny_relu3` in `tiny`); any other model's is found in its graph:
the last layer whose output is a rank-4 map larger than 1 x 1 and that the class output
depends on, the last block of any convolutional classifier.

Needs the TensorFlow backend (the gradient is taken with `tf.GradientTape`).

Example (a random `tiny` model; the map has the crop's size):

```python
import numpy as np
from adcorre.models.cnn_model import CNNModel
model = CNNModel().get_model("tiny", weights=None, input_size=64)
feature_map_layer(model).name                  # 'tiny_relu3'
heat = grad_cam(model, np.random.rand(2, 64, 64, 3).astype("float32"))
heat.shape                                     # (2, 64, 64), values in [0, 1]
```
"""

import cv2
from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre.errors import ModelCapabilityError, SettingError, first_line
from adcorre.models.registry import ARCHS
from adcorre.reports import pyplot, save_figure


class NoFeatureMapError(ModelCapabilityError):
    """The model has no 2-D feature map Grad-CAM could weigh (e.g. a Dense-only classifier)."""


def feature_map_layer(model, arch=None):
    """The layer whose output Grad-CAM weighs.

    For a model of a registered arch (`arch`, e.g. `ModelInfo.arch`), the registry's
    `feature_map` (`models.registry.ArchSpec`); for any other model, the last layer whose output
    is a 2-D feature map (rank 4, more than 1 x 1) that the class output (the model's first
    output) depends on. For every registered arch the two agree (a test checks it).

    Raises:
        NoFeatureMapError: there is none.
    """
    if arch in ARCHS:
        try:
            return model.get_layer(ARCHS[arch].feature_map)
        except ValueError:  # a file that says its arch but was built otherwise: search
            pass
    ancestors = _ancestor_layers(model, model.outputs[0])
    for layer in reversed(model.layers):
        if id(layer) not in ancestors or isinstance(layer, keras.layers.InputLayer):
            continue
        try:
            shape = tuple(layer.output.shape)
        except (AttributeError, ValueError):  # several outputs, or not called in this graph
            continue
        if len(shape) == 4 and all(isinstance(s, int) for s in shape[1:3]) \
                and shape[1] * shape[2] > 1:
            return layer
    kinds = ", ".join(sorted({type(layer).__name__ for layer in model.layers}))
    raise NoFeatureMapError(
        f"Grad-CAM needs a convolutional feature map (a layer output of shape (n, h, w, c) with "
        f"h x w > 1) before the class output; model {model.name!r} has none (its layers: {kinds}).")


def grad_cam(model, images, class_index=None, layer=None):
    """Grad-CAM heat maps of a batch.

    Args:
        model: a Keras model whose first output is the class scores (probabilities or logits).
        images: float32 (n, h, w, c), already in the model's input range.
        class_index: the class to explain, an int or one per image; None = the predicted one.
        layer: the feature map layer (default `feature_map_layer(model)`).

    Returns:
        float32 (n, h, w) in [0, 1], upsampled to the input size (all zeros where no
        location raises the score).
    """
    if keras.backend.backend() != "tensorflow":
        raise SettingError("Grad-CAM needs the TensorFlow backend (KERAS_BACKEND=tensorflow).")
    import tensorflow as tf

    layer = layer or feature_map_layer(model)
    images = tf.convert_to_tensor(np.asarray(images, "float32"))
    before_scores, to_scores = _score_head(model)
    # The gradient is taken from the feature map on only: the backbone runs outside the tape
    # (differentiating a whole foreign network from its input crashed oneDNN's convolution
    # backward pass, and Grad-CAM needs none of it).
    feature_map = keras.Model(model.inputs, layer.output)(images, training=False)
    head = _head_after(model, layer, before_scores)
    with tf.GradientTape() as tape:
        tape.watch(feature_map)
        scores = to_scores(head(feature_map, training=False))
        chosen = np.argmax(scores.numpy(), axis=-1) if class_index is None else np.broadcast_to(
            np.asarray(class_index, "int64"), (images.shape[0],))
        picked = tf.gather(scores, chosen, axis=1, batch_dims=1)
    gradients = tape.gradient(picked, feature_map)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature_map, axis=-1)).numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)
    cam = cam / np.where(peak > 0, peak, 1.0)[:, None, None]
    height, width = images.shape[1:3]
    heat = np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR) for m in cam])
    return np.clip(heat, 0.0, 1.0).astype("float32")


def _head_after(model, layer, before_scores):
    """The part of `model` from `layer`'s output to `before_scores`, as a model of its own.

    Raises:
        NoFeatureMapError: the scores also depend on something before the map (a connection
            that skips it), so the map alone does not decide them.
    """
    try:
        return keras.Model(layer.output, before_scores)
    except ValueError as error:
        raise NoFeatureMapError(
            f"Grad-CAM weighs the feature map {layer.name!r} of model {model.name!r}, but its "
            f"class scores also depend on layers before it ({first_line(error)}); expected the "
            "scores to follow from the map alone.") from None


def _score_head(model):
    """`(tensor, to_logits)`: the tensor that feeds the final softmax and the map from it to
    the class logits (the softmax Dense without its activation), or the output and the identity
    when the model ends in logits or in something else."""
    output = model.outputs[0]
    last = output._keras_history.operation
    activation = getattr(last, "activation", None)
    if isinstance(last, keras.layers.Dense) and activation is keras.activations.softmax:
        def logits(features):
            product = keras.ops.matmul(features, last.kernel)
            return product + last.bias if last.use_bias else product

        return last.input, logits
    if isinstance(last, keras.layers.Softmax) or (
            isinstance(last, keras.layers.Activation) and activation is keras.activations.softmax):
        return last.input, lambda logits: logits
    return output, lambda scores: scores


def _ancestor_layers(model, tensor):
    """ids of the layers `tensor` depends on, following the functional graph backwards."""
    seen, stack = set(), [tensor]
    while stack:
        history = getattr(stack.pop(), "_keras_history", None)
        if history is None or id(history.operation) in seen:
            continue
        seen.add(id(history.operation))
        node = history.operation._inbound_nodes[history.node_index]
        stack.extend(node.input_tensors)
    return seen


def overlay(crop, heat, alpha=0.45, colormap="jet"):
    """The heat map (any size, values in [0, 1]) laid over a uint8 RGB crop, as uint8 RGB."""
    plt = pyplot()
    if heat.shape != crop.shape[:2]:
        heat = cv2.resize(heat, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = plt.get_cmap(colormap)(heat)[..., :3] * 255.0
    return np.clip((1 - alpha) * crop + alpha * colours, 0, 255).astype(np.uint8)


def plot_grad_cam(crop, heat, path, title=""):
    """Writes the crop beside its Grad-CAM overlay (`heat` resized to the crop) as a PNG."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 3.6))
    axes[0].imshow(crop)
    axes[0].set_title("face crop", fontsize=9)
    axes[1].imshow(overlay(crop, heat))
    axes[1].set_title("Grad-CAM", fontsize=9)
    for axis in axes:
        axis.set_axis_off()
    figure.colorbar(plt.cm.ScalarMappable(cmap="jet"), ax=axes[1], fraction=0.046, pad=0.04)
    figure.suptitle(title, fontsize=10)
    save_figure(figure, path)
    return path
