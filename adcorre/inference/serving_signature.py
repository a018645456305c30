"""The SavedModel signature `serving_bytes`: encoded pictures in, class probabilities out.

TF Serving, Vertex AI and KServe host a SavedModel as it is, so everything `TestModels.predict`
does to a picture before the model runs is done here in TensorFlow ops, inside the graph:

1. decoding (`tf.io.decode_image`: JPEG, PNG, GIF, BMP) to RGB (grey and RGBA pictures too);
2. resizing the whole picture to the model's input size as `face_crops.resize_whole` does with
   OpenCV: area averaging when it shrinks, OpenCV's bilinear weights when it grows (and OpenCV's
   area-mode weights when one side shrinks and the other grows), rounded to 8 bits as OpenCV
   writes them (the two-pixel blends bit for bit, in OpenCV's fixed point);
3. scaling to [0, 1], BT.601 grey for one-channel models, then the model's input range;
4. the model, and a softmax where its file says it outputs logits.

Outputs: `probabilities` (n, classes) float32 and `labels` (n, classes) strings (the class
names, the same on every row, so TF Serving's row format holds them).

No face detection runs here: each picture is classified whole, as `TestModels.predict` does with
a face crop, so clients send crops. EXIF orientation is not applied (`read_picture` applies it):
send pictures upright. JPEG decoders differ by a few levels per pixel (TensorFlow's libjpeg-turbo
settings against OpenCV's or Pillow's), so a JPEG is compared with `predict` on the pixels this
graph decodes.

Example (a model and its `weights_io.ModelInfo`):

```python
archive = keras.export.ExportArchive()
archive.track(model)
archive.add_endpoint("serving_bytes", serving_bytes_function(model, info, labels))
```
"""

from adcorre import runtime  # noqa: F401  (TensorFlow loads without its start-up noise)
import tensorflow as tf

# OpenCV's fixed-point resize coefficients: 11 fractional bits (INTER_RESIZE_COEF_BITS).
_COEFFICIENT_SCALE = 2048.0
# ITU-R BT.601 luma, as `TestModels.to_model_input` (and OpenCV's RGB2GRAY).
_LUMA = (0.299, 0.587, 0.114)
SIGNATURE = "serving_bytes"


def serving_bytes_function(model, info, labels):
    """The `tf.function` of the signature, traced for a batch of encoded pictures.

    Args:
        model: the Keras model (TensorFlow backend).
        info: its `weights_io.ModelInfo` (input size, channels, input range,
            `outputs_probabilities`).
        labels: the class names, in output order.

    Returns:
        a `tf.function` of `images` (tf.string, shape [None]) returning
        `{"probabilities": (n, classes) float32, "labels": (n, classes) string}`.
    """
    height, width = (int(v) for v in info.input_size)
    low, high = (float(v) for v in info.input_range)
    names = tf.constant([str(name) for name in labels])
    softmax = not info.outputs_probabilities

    def one_picture(encoded):
        pixels = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return resize_like_opencv(pixels, height, width)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serving_bytes(images):
        pixels = tf.map_fn(one_picture, images,
                           fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
        scaled = pixels / 255.0
        if info.channels == 1:
            scaled = tf.tensordot(scaled, tf.constant(_LUMA), axes=[[3], [0]])[..., None]
        outputs = model(low + (high - low) * scaled, training=False)
        scores = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        probabilities = tf.nn.softmax(scores, axis=-1) if softmax else scores
        rows = tf.shape(probabilities)[0]
        return {"probabilities": tf.cast(probabilities, tf.float32),
                "labels": tf.tile(names[None], [rows, 1])}

    return serving_bytes


def resize_like_opencv(pixels, height, width):
    """`face_crops.resize_whole` in TensorFlow: uint8 (h, w, 3) -> float32 (height, width, 3)
    holding whole numbers 0..255.

    A picture that shrinks on both axes is averaged (OpenCV's INTER_AREA: exactly for a half,
    and otherwise within one level of OpenCV's float sums, which add in another order, on up to
    2 pixels in a thousand); any other is blended from two pixels per axis exactly as OpenCV's
    8-bit resize does it (`_two_pixel_resize`).
    """
    source_height, source_width = tf.shape(pixels)[0], tf.shape(pixels)[1]
    shrinks = tf.logical_or(source_height > height, source_width > width)
    grows = tf.logical_or(source_height < height, source_width < width)

    def averaged():
        resized = tf.image.resize(tf.cast(pixels, tf.float32), [height, width], method="area")
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0)

    def halved():  # OpenCV's integer path for exactly half: (a + b + c + d + 2) >> 2
        quads = tf.reshape(tf.cast(pixels, tf.int32), [height, 2, width, 2, 3])
        return tf.cast(tf.bitwise.right_shift(tf.reduce_sum(quads, axis=[1, 3]) + 2, 2),
                       tf.float32)

    def area():
        half = tf.logical_and(tf.equal(source_height, 2 * height),
                              tf.equal(source_width, 2 * width))
        return tf.cond(half, halved, averaged)

    def blended():
        # resize_whole asks for INTER_AREA whenever a side shrinks; where the other grows,
        # OpenCV blends two pixels with its "area mode" weights instead of averaging.
        return _two_pixel_resize(pixels, height, width, tf.logical_and(shrinks, grows))

    return tf.cond(tf.logical_and(shrinks, tf.logical_not(grows)), area, blended)


def _two_pixel_resize(pixels, height, width, area_mode):
    """OpenCV's 8-bit INTER_LINEAR (or INTER_AREA's two-pixel "area mode"), bit for bit: 11-bit
    weights, exact integer sums along x, then its vectorised rounding along y."""
    columns, column_weights = _taps(tf.shape(pixels)[1], width, area_mode, clamp_weights=True)
    rows, row_weights = _taps(tf.shape(pixels)[0], height, area_mode, clamp_weights=False)
    source = tf.cast(pixels, tf.int32)
    along_x = (tf.gather(source, columns[0], axis=1) * column_weights[0][None, :, None]
               + tf.gather(source, columns[1], axis=1) * column_weights[1][None, :, None])
    # OpenCV's vector code: (w0 * (s0 >> 4)) >> 16 for each row, summed, then (+ 2) >> 2.
    terms = [tf.bitwise.right_shift(
        weight[:, None, None] * tf.bitwise.right_shift(tf.gather(along_x, index), 4), 16)
        for index, weight in zip(rows, row_weights)]
    resized = tf.bitwise.right_shift(terms[0] + terms[1] + 2, 2)
    return tf.cast(tf.clip_by_value(resized, 0, 255), tf.float32)


def _taps(source, size, area_mode, clamp_weights):
    """`((first, second), (weight_first, weight_second))` of one axis: int32 source indices
    and OpenCV's int16 fixed-point weights (2048 = 1), computed in OpenCV's precisions.

    Args:
        source: the source length (a scalar int32 tensor).
        size: the output length.
        area_mode: a scalar bool tensor: INTER_AREA's weights (blend only where an output pixel
            straddles a source boundary) rather than INTER_LINEAR's (pixel centres).
        clamp_weights: OpenCV's x axis: an output pixel outside the source takes the edge pixel
            whole; along y it keeps its weights over the (clamped, equal) rows.
    """
    inverse = size / tf.cast(source, tf.float64)  # OpenCV's inv_scale, then scale = 1 / it
    scale = 1.0 / inverse
    outputs = tf.range(size, dtype=tf.float64)

    def linear():
        position = tf.cast((outputs + 0.5) * scale - 0.5, tf.float32)
        first = tf.floor(position)
        return first, position - first

    def area_like():
        first64 = tf.floor(outputs * scale)
        blend = tf.cast((outputs + 1.0) - (first64 + 1.0) * inverse, tf.float32)
        blend = tf.where(blend <= 0.0, tf.zeros_like(blend), blend - tf.floor(blend))
        return tf.cast(first64, tf.float32), blend

    first, blend = tf.cond(area_mode, area_like, linear)
    first = tf.cast(first, tf.int32)
    last = source - 1
    if clamp_weights:
        outside = (first < 0) | (first >= last)
        blend = tf.where(outside, tf.zeros_like(blend), blend)
        first = tf.clip_by_value(first, 0, last)
    # saturate_cast<short>: rounded half to even, as tf.round.
    weights = (tf.cast(tf.round((1.0 - blend) * _COEFFICIENT_SCALE), tf.int32),
               tf.cast(tf.round(blend * _COEFFICIENT_SCALE), tf.int32))
    second = tf.clip_by_value(first + 1, 0, last)
    return (tf.clip_by_value(first, 0, last), second), weights
