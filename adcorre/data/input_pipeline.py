"""The `tf.data` input pipeline: a `read_split` frame -> batches of `(images, labels)`.

One epoch of training data is fixed by three things: the frame, `seed` and `epoch`.
`epoch_order` (NumPy) draws the epoch's row order, a permutation or an MRR draw, and
`make_dataset` decodes, crops, resizes and augments the rows in that order, with every
random choice a stateless function of `(seed, epoch, position in the epoch)`. So a run
repeats exactly, parallel decoding never changes a pixel, and a resumed epoch can skip
the batches it had already trained on (`skip_batches`). `TrainModel` builds one dataset
per epoch this way; there is no second shuffling path.

Images come out as float32 RGB in [0, 1] at `input_size` x `input_size`, labels int32.
Backbone-specific scaling (Xception's [-1, 1], ResNet's caffe means, ImageNet mean/std)
is *not* applied here: every model of this project scales its own input.

Example:

```python
from adcorre.data import dataset_readers
from adcorre.data import input_pipeline
train = dataset_readers.read_split("rafdb", "data/rafdb", "train")
ds = input_pipeline.make_dataset(train, input_size=224, batch_size=32, training=True, seed=1)
for images, labels in ds.take(1):
    print(images.shape, labels.shape)  # (32, 224, 224, 3) (32,)
```
"""

import dataclasses
import math
import os

import cv2
import numpy as np

from adcorre import runtime

runtime.quiet_tensorflow()  # before TensorFlow loads below: without its start-up noise
import tensorflow as tf  # noqa: E402

from adcorre import config  # noqa: E402
from adcorre.data.pictures import describe_image, to_rgb_uint8, validate_images, warn_skipped  # noqa: E402
from adcorre.errors import DatasetFormatError, SettingError  # noqa: E402

# ARM's erasing fill: torchvision's value 0 after its ImageNet Normalize.
IMAGENET_MEAN_RGB = config.IMAGENET_MEAN_RGB


@dataclasses.dataclass
class Augmentation:
    """Training augmentation, applied at the model's input size.

    The defaults are common FER practice: horizontal flip, a small random
    rotation / scale / shift (on half the images), colour jitter, and random
    erasing (p 0.5, 2-25 % of the area, aspect 0.3-3.3, filled with the
    ImageNet mean colour as torchvision's `RandomErasing` does after
    normalisation). ARM trains with less: a flip or Gaussian noise, then
    erasing of 2-10 % (`AUGMENTATIONS["arm"]`).

    `noise` adds Gaussian noise of `noise_std` (0-255 units) to the decoded picture before
    anything else, clipped and truncated back to uint8 as ARM's `add_gaussian_noise` does. It is
    drawn from the same uniform number as the flip (flip below `flip`, noise in the next
    `noise`), so a picture gets at most one of the two: ARM's "one of {flip, noise}".
    `AUGMENTATIONS["arm"]` is ARM's training transform.
    """

    flip: float = 0.5               # probability of a horizontal flip
    noise: float = 0.0              # probability of Gaussian noise (never together with a flip)
    noise_std: float = 30 ** 0.5    # ARM's image_utils: var=30 on 0-255 pixels
    geometry: float = 0.5           # probability of the rotation / zoom / shift warp
    rotation: float = 10.0          # max degrees either way
    scale: tuple = (0.9, 1.1)       # zoom range
    shift: float = 0.08             # max shift, fraction of the side
    brightness: float = 0.15        # max additive change in [0, 1] units
    contrast: float = 0.2           # factor in [1 - c, 1 + c]
    saturation: float = 0.2         # factor in [1 - s, 1 + s]
    erase_prob: float = 0.5
    erase_area: tuple = (0.02, 0.25)
    erase_ratio: tuple = (0.3, 3.3)
    erase_value: tuple = IMAGENET_MEAN_RGB


# Augmentations by name (`augment="arm"`, `TrainModel(augmentation="arm")`).
AUGMENTATIONS = {
    "default": Augmentation(),
    # ARM's src/dataset.py (basic_aug: with p 0.5 one of image_utils' flip_image and
    # add_gaussian_noise, on the decoded picture) and train_raf-db.py's RandomErasing(scale=(0.02,
    # 0.1)) after Normalize (p 0.5, ratio 0.3-3.3, value 0 = the ImageNet mean here); nothing else.
    "arm": Augmentation(flip=0.25, noise=0.25, geometry=0.0, brightness=0.0, contrast=0.0,
                        saturation=0.0, erase_area=(0.02, 0.1)),
}


def resolve_augmentation(augment):
    """An `Augmentation` for `True` / a name of `AUGMENTATIONS` / an `Augmentation`, or `False`.

    Example:
    >>> resolve_augmentation("arm").erase_area
    (0.02, 0.1)
    """
    if augment is True:
        return Augmentation()
    if isinstance(augment, str) and augment in AUGMENTATIONS:
        return AUGMENTATIONS[augment]
    if augment is False or isinstance(augment, Augmentation):
        return augment
    raise SettingError(f"augment must be True, False, an input_pipeline.Augmentation or one of "
                       f"{tuple(AUGMENTATIONS)}, got {augment!r}.")


# ------------------------------------------------------------------------------ epoch order


def epoch_order(labels, seed=0, epoch=0, shuffle=True, mrr=False):
    """The row order of one epoch, keyed by `(seed, epoch)`.

    Args:
        labels: int array (n,) of the frame's labels.
        seed: the run's seed.
        epoch: the epoch index; each epoch draws a new order.
        shuffle: permute the rows (else keep the frame's order).
        mrr: minimal random resampling (ARM): every class present is topped up by random
            re-draws (with replacement) to the size of the largest class, then all is
            permuted (`shuffle` is implied: the top-ups must not come grouped by class).

    Returns:
        int64 array of row indices (longer than `labels` with MRR).

    Example:
    >>> epoch_order(np.array([0, 0, 0, 1]), seed=0, epoch=0, mrr=True).shape
    (6,)
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), int(epoch)])
    if not mrr:
        return rng.permutation(len(labels)) if shuffle else np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    groups = [np.flatnonzero(labels == c) for c in classes]
    groups = [np.concatenate([rows, rng.choice(rows, counts.max() - len(rows))]) for rows in groups]
    return rng.permutation(np.concatenate(groups))


# -------------------------------------------------------------------------------- the dataset


def make_dataset(frame, input_size=config.InputDataSize.image_input_size, batch_size=32,
                 training=False, augment=None, seed=None, epoch=0, shuffle=None, mrr=False,
                 skip_batches=0, shard=None, drop_remainder=False, validate="header",
                 num_batches=None, return_index=False):
    """Builds one epoch of the `tf.data` pipeline for a `read_split` frame.

    Each element of a row: decode the image whatever its extension (JPEG, PNG,
    BMP, GIF; grey and RGBA become RGB), crop the `box` if the frame has one,
    resize to `input_size` (bilinear, antialiased), augment when asked, scale to
    float32 RGB in [0, 1].

    Args:
        frame: a `read_split` frame (`image`, `label`, optional `box`), or the
            `PipelineRows` that `prepare_rows` made of one (for several epochs).
        input_size: output side in pixels.
        batch_size: the batch size (the global one; see `distribute_dataset`).
        training: default for `augment` and `shuffle`.
        augment: `True` (the default `Augmentation()`), an `Augmentation`, a name of
            `AUGMENTATIONS` (`"arm"`), or `False` (default: `training`).
        seed: integer seed of the order and the augmentation; `None` draws one.
        epoch: which epoch of the run this is (a new order and new augmentation draws).
        shuffle: permute the rows (default: `training`); see `epoch_order`.
        mrr: minimal random resampling each epoch; see `epoch_order`.
        skip_batches: leave out the epoch's first batches (a resumed epoch); the
            remaining ones are exactly those of the uninterrupted epoch.
        shard: `(num_shards, index)`: keep every `num_shards`-th element of the epoch's
            order, starting at `index` (shards of one seed are disjoint).
        drop_remainder: drop the last incomplete batch.
        validate: "header", "decode" or "none": how images are checked before the
            pipeline is built, see `usable_rows` ("decode" runs this pipeline's own
            decoder over every file once). A file that fails to decode anyway is left out
            of the batches, never raised; `return_index` tells which rows came through.
            `PipelineRows` were checked when they were prepared.
        num_batches: exactly this many batches, a length Keras knows up front: the
            elements after the epoch's (its order once more) stand in for images that
            fail to decode, so batches stay full, and the dataset ends after
            `num_batches`. Without it, the length is unknown to Keras.
        return_index: also yield each element's row in the validated frame (int64),
            so predictions can be matched with their rows whatever was left out; the
            validated frame's images are in the dataset's `images` attribute.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` (`(images, labels, rows)` with
        `return_index`): float32 (b, input_size, input_size, 3) in [0, 1] and int32
        (b,). Attributes: `skipped` (list of `(image, reason)`), `num_examples`
        (elements in this epoch, for this shard), `steps_per_epoch`, `class_counts`
        (per canonical class, in this epoch), `images`.

    Example:

    >>> from adcorre.data.dataset_readers import read_split
    >>> frame = read_split("synth", None, "train", n=8, image_size=48)
    >>> ds = make_dataset(frame, input_size=32, training=True, batch_size=4, seed=0)
    >>> [tuple(x.shape) for x in next(iter(ds))]
    [(4, 32, 32, 3), (4,)]
    """
    shuffle = training if shuffle is None else shuffle
    augment = resolve_augmentation(training if augment is None else augment)
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if not 0 <= shard[1] < shard[0]:
            raise SettingError("shard must be (num_shards, index) with 0 <= index < num_shards, "
                               f"got {shard}.")
    seed = _seed_or_fresh(seed)
    rows = frame if isinstance(frame, PipelineRows) else prepare_rows(frame, input_size, validate)
    if rows.input_size != input_size:
        raise SettingError(f"These PipelineRows were prepared for input_size {rows.input_size}, "
                           f"not {input_size}; prepare them again for this size.")
    labels, load = rows.labels, rows.load
    order, positions, num_examples = _epoch_plan(
        labels, seed, epoch, shuffle, mrr, skip_batches * batch_size, shard,
        spares=num_batches is not None)
    labels_t = tf.constant(labels.astype(np.int32))
    epoch_key = tf.constant(int(epoch) << 32, tf.int64)

    def element(index, position):
        image = load(index)
        if augment is False:
            image = _to_unit(image, input_size)
        else:
            element_seed = tf.stack([tf.constant(seed, tf.int64), epoch_key + position])
            image = _augment(image, element_seed, input_size, augment)
        if return_index:
            return image, labels_t[index], index
        return image, labels_t[index]

    ds = tf.data.Dataset.from_tensor_slices((order.astype(np.int64), positions))
    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not rows.from_arrays:
        # A file that passed the checks but still fails to decode is left out, never raised.
        ds = ds.ignore_errors(log_warning=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True)
    if num_batches is not None:
        # A length Keras knows: it then stops after the last batch instead of running into
        # the end of the data ("Your input ran out of data") every epoch.
        ds = ds.take(num_batches).apply(tf.data.experimental.assert_cardinality(num_batches))
    ds = ds.prefetch(tf.data.AUTOTUNE)

    ds.skipped = rows.skipped
    ds.num_examples = num_examples
    ds.steps_per_epoch = num_batches if num_batches is not None else (
        num_examples // batch_size if drop_remainder else -(-num_examples // batch_size))
    ds.class_counts = np.bincount(labels[order[:num_examples]],
                                  minlength=max(7, int(labels.max()) + 1))
    ds.images = rows.items
    return ds


@dataclasses.dataclass(frozen=True)
class PipelineRows:
    """A frame's usable rows, ready for the pipeline: built once by `prepare_rows`, then any
    number of epochs' `make_dataset(rows, ...)` reuse them (the images of an in-memory frame
    are stacked into one tensor once, not once per epoch)."""

    labels: np.ndarray
    items: list
    skipped: list
    from_arrays: bool
    load: object
    input_size: int


def prepare_rows(frame, input_size, validate="header"):
    """The usable rows of a `read_split` frame and their loader, for `make_dataset`.

    Args:
        frame: a `read_split` frame (`image`, `label`, optional `box`).
        input_size: the side in pixels the pipeline will produce.
        validate: "header", "decode" or "none", see `usable_rows`.

    Returns:
        A `PipelineRows`.
    """
    if "image" not in frame.columns or "label" not in frame.columns:
        raise SettingError(f"frame needs 'image' and 'label' columns, has {list(frame.columns)}.")
    good, skipped = usable_rows(frame, mode=validate)
    if len(good) == 0:
        raise DatasetFormatError(f"No usable images: {len(skipped)} skipped, first: {skipped[:3]}.")
    items = list(good["image"])
    kinds = {type(item) for item in items}
    if any(issubclass(k, np.ndarray) for k in kinds) and len(kinds) > 1:
        raise SettingError("frame['image'] mixes arrays and paths; use one kind per frame.")
    from_arrays = isinstance(items[0], np.ndarray)
    load = (_array_loader(_stack_arrays(items, input_size), _boxes(good)) if from_arrays
            else _file_loader(items, _boxes(good)))
    return PipelineRows(good["label"].to_numpy(np.int64), items, skipped, from_arrays, load,
                        input_size)


def _epoch_plan(labels, seed, epoch, shuffle, mrr, skip, shard, spares):
    """The rows of one epoch in pipeline order, and their positions in the whole epoch.

    Returns:
        `(order, positions, num_examples)`: the epoch's order from its `skip`-th element,
        this shard's share of it; with `spares`, followed by the same rows once more (which
        stand in for images that fail to decode) at positions past the epoch's end.
    """
    order = epoch_order(labels, seed, epoch, shuffle, mrr)
    epoch_length = len(order)
    # Augmentation draws are keyed by the position in the whole epoch (before sharding and
    # skipping), so no two shards share one and a resumed epoch repeats the original's.
    positions = np.arange(epoch_length, dtype=np.int64)
    order, positions = order[skip:], positions[skip:]
    if shard is not None:
        order, positions = order[shard[1]::shard[0]], positions[shard[1]::shard[0]]
    num_examples = len(order)
    if spares:
        order = np.concatenate([order, order])
        positions = np.concatenate([positions, positions + epoch_length])
    return order, positions, num_examples


def _seed_or_fresh(seed):
    """`seed` as an int, or a fresh one drawn from the operating system's entropy."""
    return int(np.random.SeedSequence().entropy % (2**31)) if seed is None else int(seed)


def usable_rows(frame, mode="header", warn=True):
    """The rows of a frame whose images the pipeline can use, and the skipped ones.

    Args:
        frame: a `read_split` frame.
        mode: "header" and "none" as `pictures.validate_images`; "decode" also runs this
            pipeline's own decoder over every file that passed the header check (OpenCV, which
            `validate_images(mode="decode")` uses, accepts JPEGs whose scan data is noise;
            TensorFlow does not). A full pass over the data, about one epoch's decoding.
        warn: one `BadImageWarning` naming the first few skipped images.

    Returns:
        `(good_frame, skipped)` as `pictures.validate_images`.
    """
    if mode != "decode":
        return validate_images(frame, mode=mode, warn=warn)
    good, skipped = validate_images(frame, mode="header", warn=False)
    good, undecodable = _decodable_rows(good)
    skipped = skipped + undecodable
    good.attrs = dict(frame.attrs, skipped=skipped)
    if warn:
        warn_skipped(skipped, len(frame), stacklevel=3)
    return good, skipped


def _decodable_rows(frame):
    """`(rows this pipeline decodes, [(image, reason)] of the others)`, one decoding pass."""
    items = list(frame["image"])
    if not items or isinstance(items[0], np.ndarray):
        return frame, []
    load = _file_loader(items, _boxes(frame))

    def decoded_shape(index):
        return index, tf.shape(load(index))  # the shape needs the decoded pixels

    ds = (tf.data.Dataset.range(len(items))
          .map(decoded_shape, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
          .ignore_errors()
          .batch(1024))
    decoded = np.zeros(len(items), bool)
    for rows, _ in ds:
        decoded[rows.numpy()] = True
    bad = np.flatnonzero(~decoded)
    if not len(bad):
        return frame, []
    skipped = [(describe_image(items[i]), _decode_error(load, i)) for i in bad]
    good = frame.drop(index=frame.index[bad]).reset_index(drop=True)
    return good, skipped


def _decode_error(load, index):
    """Why row `index` does not decode, in TensorFlow's words (one line)."""
    try:
        load(tf.constant(index, tf.int64))
    except (tf.errors.OpError, ValueError) as error:
        message = getattr(error, "message", str(error))
        message = message.split("}}")[-1].split("[Op:")[0].strip().rstrip(".")
        return f"could not be decoded: {message}"
    return "could not be decoded"


def distribute_dataset(strategy, frame, batch_size=32, seed=None, **kwargs):
    """A distributed dataset for `strategy`, one input pipeline per worker.

    `batch_size` is the global batch: each replica gets
    `batch_size // strategy.num_replicas_in_sync` elements per step (it must
    divide evenly). Each input pipeline keeps its own shard of the epoch's
    order (`make_dataset(shard=(num_input_pipelines, pipeline_id))`); all use
    the same seed, so shards are disjoint. With several workers pass an
    explicit `seed` (each process draws its own otherwise).

    Args:
        strategy: a `tf.distribute.Strategy`.
        frame: a `read_split` frame.
        batch_size: global batch size.
        seed: shared seed (drawn once here when None).
        **kwargs: passed to `make_dataset` (`training`, `epoch`, `mrr`...).

    Returns:
        A distributed dataset; `.skipped` and `.num_examples` (global, per
        epoch) are attached when it allows attributes.

    Example (two replicas need two devices: two GPUs, or two logical CPUs configured before
    TensorFlow first runs, as tests/data/test_data_helper.py does):

    ```python
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dist = distribute_dataset(strategy, frame, batch_size=64, training=True)
    ```
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise SettingError(f"batch_size {batch_size} does not split evenly over {replicas} "
                           "replicas.")
    seed = _seed_or_fresh(seed)
    good, skipped = usable_rows(frame, mode=kwargs.pop("validate", "header"))

    def make_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(batch_size)
        shard = None
        if input_context.num_input_pipelines > 1:
            shard = (input_context.num_input_pipelines, input_context.input_pipeline_id)
        return make_dataset(good, batch_size=per_replica, seed=seed, shard=shard, validate="none",
                            **kwargs)

    dist = strategy.distribute_datasets_from_function(make_fn)
    try:
        dist.skipped = skipped
        dist.num_examples = len(good)
    except AttributeError:
        pass
    return dist


# ---------------------------------------------------------------------------- decoding a row


def _stack_arrays(items, input_size):
    """Arrays of a frame -> one uint8 (n, h, w, 3) block (resized to input_size if sizes differ)."""
    images = [to_rgb_uint8(item) for item in items]
    if len({image.shape for image in images}) > 1:
        images = [cv2.resize(image, (input_size, input_size), interpolation=cv2.INTER_AREA)
                  for image in images]
    return np.stack(images)


def _boxes(frame):
    """The frame's `box` column as int32 (n, 4); -1 where a row has no box."""
    out = np.full((len(frame), 4), -1, np.int32)
    if "box" not in frame.columns:
        return out
    for i, box in enumerate(frame["box"]):
        if box is not None and not (isinstance(box, float) and np.isnan(box)):
            out[i] = np.asarray(box, np.int64)[:4]
    return out


def _array_loader(block, boxes):
    """index -> uint8 image (cropped to its box), from a uint8 (n, h, w, 3) block."""
    images_t = tf.constant(block)
    boxes_t = tf.constant(boxes)
    has_boxes = bool(np.any(boxes[:, 2] > 0))

    def load(index):
        return _crop_array(images_t[index], boxes_t[index]) if has_boxes else images_t[index]

    return load


def _file_loader(items, boxes):
    """index -> uint8 image (cropped to its box), decoding a file (or encoded bytes)."""
    is_bytes = isinstance(items[0], (bytes, bytearray))
    # Paths as their bytes: a file name that is not UTF-8 (a Latin-1 é on Linux) is a str with
    # surrogates, which a TensorFlow string cannot hold, and its bytes are what the file system
    # knows it by.
    sources_t = tf.constant([bytes(i) if is_bytes else os.fsencode(i) for i in items])
    boxes_t = tf.constant(boxes)

    def load(index):
        contents = sources_t[index] if is_bytes else tf.io.read_file(sources_t[index])
        return _decode(contents, boxes_t[index])

    return load


def _decode(contents, box):
    """Decodes JPEG/PNG/BMP/GIF bytes to uint8 RGB and crops `box` (x, y, w, h; -1: none)."""

    def jpeg():
        # JPEGs decode only the crop window, which saves time on big AffectNet photos.
        shape = tf.cast(tf.image.extract_jpeg_shape(contents), tf.int32)
        return tf.image.decode_and_crop_jpeg(contents, _window(box, shape[0], shape[1]), channels=3)

    def other():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False, dtype=tf.uint8)
        return _crop_array(image, box)

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def _window(box, height, width):
    """[y, x, h, w] of `box` clipped to the image; the whole image if box[2] <= 0."""
    has_box = box[2] > 0
    x0 = tf.clip_by_value(box[0], 0, width - 1)
    y0 = tf.clip_by_value(box[1], 0, height - 1)
    x1 = tf.clip_by_value(box[0] + box[2], x0 + 1, width)
    y1 = tf.clip_by_value(box[1] + box[3], y0 + 1, height)
    return tf.where(has_box, tf.stack([y0, x0, y1 - y0, x1 - x0]), tf.stack([0, 0, height, width]))


def _crop_array(image, box):
    shape = tf.shape(image)
    w = _window(box, shape[0], shape[1])
    return image[w[0]:w[0] + w[2], w[1]:w[1] + w[3]]


def _to_unit(image, size):
    """uint8 image of any size -> float32 [0, 1] at size x size (bilinear, antialiased)."""
    if tuple(image.shape[:2]) == (size, size):  # already at size: pixels pass through exactly
        return tf.cast(image, tf.float32) / 255.0
    shape = tf.shape(image)
    # Antialiasing only matters when shrinking, and costs twice plain bilinear.
    image = tf.cond(tf.reduce_any(shape[:2] > size),
                    lambda: tf.image.resize(image, [size, size], antialias=True),
                    lambda: tf.image.resize(image, [size, size]))
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


# ------------------------------------------------------------------------------ augmentation


def _augment(image, seed, size, aug):
    """Augments a uint8 image of any size into float32 [0, 1] at size x size.

    Gaussian noise first (when `aug.noise`; never with a flip), on the source
    pixels. Geometry (with probability `aug.geometry`): flip, rotation, zoom and shift
    are folded with the resize into one projective warp from the source
    pixels; otherwise a plain resize and flip. Then colour jitter (one 3x3
    colour matrix, when any of its ranges is set) and random erasing.
    """
    u = tf.random.stateless_uniform([16], seed=seed)
    flip = u[0] < aug.flip
    if aug.noise:
        # On the decoded picture, before the resize, as ARM's dataset does; from its own
        # stream of the element's seed, so the draws above stay those of the other settings.
        noisy = (u[0] >= aug.flip) & (u[0] < aug.flip + aug.noise)
        image = tf.cond(noisy, lambda: _gaussian_noise(image, seed, aug.noise_std),
                        lambda: image)

    def plain():
        out = _to_unit(image, size)
        return tf.where(flip, tf.reverse(out, axis=[1]), out)

    out = tf.cond(u[5] < aug.geometry, lambda: _warp(image, u, flip, size, aug), plain)
    out.set_shape([size, size, 3])
    if aug.brightness or aug.contrast or aug.saturation:
        out = _colour_jitter(out, u, size, aug)
    return _random_erasing(out, u, size, aug)


def _gaussian_noise(image, seed, std):
    """uint8 image + N(0, std^2) per pixel and channel, clipped to 0-255 and truncated to uint8
    (ARM's `add_gaussian_noise`: `np.clip(image + noise, 0, 255).astype(np.uint8)`)."""
    noise_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    noise = tf.random.stateless_normal(tf.shape(image), seed=noise_seed, stddev=std)
    noisy = tf.clip_by_value(tf.cast(image, tf.float32) + noise, 0.0, 255.0)
    return tf.cast(tf.floor(noisy), tf.uint8)


def _warp(image, u, flip, size, aug):
    """Flip, rotation, zoom and shift folded with the resize into one projective warp."""
    # Output pixel -> source pixel, for out = s R F (in - c) + c + t at the output
    # size, then the half-pixel-centre map from the output size to the source size.
    shape = tf.cast(tf.shape(image), tf.float32)
    sy, sx = shape[0] / size, shape[1] / size
    sign = tf.where(flip, -1.0, 1.0)
    angle = (2.0 * u[1] - 1.0) * aug.rotation * math.pi / 180.0
    zoom = aug.scale[0] + (aug.scale[1] - aug.scale[0]) * u[2]
    ox = (size - 1) / 2.0 + (2.0 * u[3] - 1.0) * aug.shift * size
    oy = (size - 1) / 2.0 + (2.0 * u[4] - 1.0) * aug.shift * size
    c = (size - 1) / 2.0
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    a0, a1, b0, b1 = sign * cos, sign * sin, -sin, cos
    a2, b2 = c - a0 * ox - a1 * oy, c - b0 * ox - b1 * oy
    transform = tf.stack([a0 * sx, a1 * sx, (a2 + 0.5) * sx - 0.5,
                          b0 * sy, b1 * sy, (b2 + 0.5) * sy - 0.5, 0.0, 0.0])
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform[None],
        output_shape=[size, size], interpolation="BILINEAR", fill_mode="CONSTANT",
        fill_value=0.0)[0]  # black borders, as torchvision's rotation and padded crop
    return out / 255.0


def _colour_jitter(out, u, size, aug):
    """Brightness b, contrast k (about the image mean) and saturation s (about the grey value).

    The three are affine, so they fold into
    out = k * (x @ M) + (b - mean_b) * k + mean_b with M = s I + (1 - s) w 1^T.
    """
    b = (2.0 * u[6] - 1.0) * aug.brightness
    k = 1.0 + (2.0 * u[7] - 1.0) * aug.contrast
    s = 1.0 + (2.0 * u[8] - 1.0) * aug.saturation
    luma = tf.constant([[0.299], [0.587], [0.114]])
    matrix = s * tf.eye(3) + (1.0 - s) * luma * tf.ones([1, 3])
    mean_b = tf.reduce_mean(out) + b
    out = tf.reshape(tf.matmul(tf.reshape(out, [-1, 3]), matrix), [size, size, 3])
    return tf.clip_by_value(out * k + ((b - mean_b) * k + mean_b), 0.0, 1.0)


def _random_erasing(out, u, size, aug):
    """One rectangle of random area and aspect, filled with `aug.erase_value`."""
    area = (aug.erase_area[0] + (aug.erase_area[1] - aug.erase_area[0]) * u[9]) * size * size
    low, high = math.log(aug.erase_ratio[0]), math.log(aug.erase_ratio[1])
    ratio = tf.exp(low + (high - low) * u[10])
    h = tf.minimum(tf.sqrt(area * ratio), float(size))
    w = tf.minimum(tf.sqrt(area / ratio), float(size))
    y0 = u[11] * (size - h)
    x0 = u[12] * (size - w)
    grid = tf.range(size, dtype=tf.float32)
    rows = (grid >= y0) & (grid < y0 + h) & (u[13] < aug.erase_prob)
    cols = (grid >= x0) & (grid < x0 + w)
    mask = rows[:, None, None] & cols[None, :, None]
    return tf.where(mask, tf.constant(aug.erase_value, tf.float32), out)
