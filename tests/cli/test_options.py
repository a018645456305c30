"""The commands' options as a user types them: a misspelt flag is named, a bad value is refused
before TensorFlow loads naming its flag, an option without its task is refused, a reader that
leaves the pipe early ends no traceback, and the messages speak the user's words."""

import os
import shutil
import subprocess
import sys

import pytest

from adcorre.cli import convert, inference_options, synth, test as test_cli, weights
from helpers import REPO_ROOT, grace_hopper_path, python_env, run_python

CPU_ONLY = {"CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture
def model(tmp_path):
    """A file that stands for a model: the options are checked before anything reads it."""
    path = tmp_path / "model.h5"
    path.write_bytes(b"never read: the options are refused first")
    return str(path)


def _refused(parse, argv, capsys):
    """The one usage error (exit status 2) `parse(argv)` gives."""
    with pytest.raises(SystemExit) as stop:
        parse(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


# ------------------------------------------------------------- what is refused, and how


def test_a_misspelt_option_is_named_not_the_task_it_hides(model, capsys):
    said = _refused(inference_options.parse_args, ["--weights", model, "--imgae", "x.jpg"], capsys)
    assert "unrecognized arguments: --imgae x.jpg" in said and "required" not in said
    assert said.endswith("unrecognized arguments: --imgae x.jpg; did you mean --image?")


# A misspelling per command of `adcorre` (`cli.main.COMMANDS`; serving is `adcorre test --serve`).
MISSPELT = [
    (["train", "--epohcs", "3"], "--epohcs 3", "--epochs"),
    (["train", "--synth-train-szie=2000"], "--synth-train-szie=2000", "--synth-train-size"),
    (["test", "--weights", "MODEL", "--imgae", "x.jpg"], "--imgae x.jpg", "--image"),
    (["test", "--weights", "MODEL", "--srve"], "--srve", "--serve"),
    (["convert", "a.pth", "b.h5", "--lables", "rafdb"], "--lables rafdb", "--labels"),
    (["synth", "--preveiw", "p.png"], "--preveiw p.png", "--preview"),
    (["weights", "--verfy"], "--verfy", "--verify"),
    (["reproduce", "adcorre-rafdb", "--relased"], "--relased", "--released"),
]


def test_the_misspellings_cover_every_command():
    from adcorre.cli.main import COMMANDS

    assert {argv[0] for argv, _, _ in MISSPELT} == set(COMMANDS)


@pytest.mark.parametrize("argv, unknown, suggested", MISSPELT)
def test_every_command_suggests_the_option_a_misspelt_one_is_close_to(argv, unknown, suggested,
                                                                      model, capsys):
    from adcorre.cli import main as adcorre_main

    argv = [model if word == "MODEL" else word for word in argv]
    said = _refused(adcorre_main.main, argv, capsys)
    assert said == (f"adcorre {argv[0]}: error: unrecognized arguments: {unknown}; did you mean "
                    f"{suggested}?")


def test_several_misspelt_options_each_get_theirs_and_a_stranger_none(model, capsys):
    said = _refused(inference_options.parse_args,
                    ["--weights", model, "--imgae", "x.jpg", "--vidoe", "v.mp4"], capsys)
    assert said.endswith("unrecognized arguments: --imgae x.jpg --vidoe v.mp4; did you mean "
                         "--image for --imgae, --video for --vidoe?")
    said = _refused(inference_options.parse_args, ["--weights", model, "--zzz"], capsys)
    assert said.endswith("unrecognized arguments: --zzz")


@pytest.mark.parametrize("parse", [
    lambda argv: inference_options.parse_args(["--weights", "w.h5", "--image", "a.jpg", *argv]),
    lambda argv: convert.main(["a.pth", "b.h5", *argv]),
])
def test_one_word_labels_are_a_preset_or_refused_naming_the_presets(parse, capsys):
    said = _refused(parse, ["--labels", "fer2031"], capsys)
    assert "argument --labels: Unknown label preset 'fer2031'; expected one of" in said
    assert "fer2013" in said and "rafdb" in said


def test_labels_parse_to_a_preset_or_names():
    parser = inference_options.build_parser()
    given = ["--weights", "w.h5", "--image", "a.jpg", "--labels"]
    assert parser.parse_args([*given, "FER2013"]).labels == "fer2013"
    assert parser.parse_args([*given, "a, b"]).labels == ["a", "b"]
    assert convert.build_parser().parse_args(["a", "b", "--input-range=-1,1"]).input_range == (-1, 1)


@pytest.mark.parametrize("parse", [
    lambda argv: inference_options.parse_args(["--weights", "w.h5", "--image", "a.jpg", *argv]),
    lambda argv: convert.main(["a.pth", "b.h5", *argv]),
])
def test_an_input_range_is_two_numbers_and_a_negative_one_is_joined_with_equals(parse, capsys):
    assert "argument --input-range: expected LO,HI" in _refused(parse, ["--input-range=abc"],
                                                                capsys)
    said = _refused(parse, ["--input-range", "-1,1"], capsys)
    assert "write --input-range=-1,1" in said and "expected one argument" not in said


def test_values_are_refused_before_tensorflow_loads(model, tmp_path):
    code = f"""
import sys
from adcorre.cli import convert, test
for command, argv in [
        (test, ["--weights", {model!r}, "--image", "absent.jpg"]),
        (test, ["--weights", {model!r}, "--video", "absent.mp4"]),
        (test, ["--weights", {model!r}, "--image", "a.jpg", "--labels", "fer2031"]),
        (convert, [{model!r}, "out.h5", "--input-range=abc"]),
        (convert, [{model!r}, "out.h5", "--labels", "fer2031"])]:
    try:
        command.main(argv)
    except SystemExit as exit:
        print("STATUS", exit.code)
print("TENSORFLOW", "tensorflow" in sys.modules)
"""
    (tmp_path / "a.jpg").write_bytes(b"a picture that is there")
    run = run_python(code, cwd=tmp_path, env=CPU_ONLY, timeout=120)
    assert run.stdout.split() == ["STATUS", "2"] * 5 + ["TENSORFLOW", "False"], run.stderr[-2000:]
    said = [line for line in run.stderr.splitlines() if "error:" in line]
    assert [line.split("error: ")[1].split(":")[0] for line in said] == [
        "argument --image", "argument --video", "argument --labels", "argument --input-range",
        "argument --labels"], said
    assert "'absent.jpg': not found" in said[0] and "'absent.mp4': not found" in said[1]


def test_a_missing_video_named_by_a_number_points_to_the_webcam(model, capsys):
    said = _refused(inference_options.parse_args, ["--weights", model, "--video", "0"], capsys)
    assert "argument --video: '0': not found" in said and "--webcam INDEX" in said


@pytest.mark.parametrize("argv, needs", [
    (["--image", "a.jpg", "--plot-cm", "cm.png"], "--plot-cm goes with --dataset"),
    (["--image", "a.jpg", "--split", "train"], "--split goes with --dataset"),
    (["--image", "a.jpg", "--data-dir", "d"], "--data-dir goes with --dataset or --representative"),
    (["--image", "a.jpg", "--out", "o"], "--out goes with --export"),
    (["--image", "a.jpg", "--overwrite"], "--overwrite goes with --export"),
    (["--image", "a.jpg", "--host", "0.0.0.0"], "--host goes with --serve"),
    (["--export", "onnx", "--port", "8080"], "--port goes with --serve"),
    (["--export", "onnx", "--max-upload-mb", "5"], "--max-upload-mb goes with --serve"),
    (["--image", "a.jpg", "--smooth", "1"], "--smooth goes with --video or --webcam"),
    (["--webcam", "--stall-timeout", "3"], "--stall-timeout goes with --video"),
])
def test_an_option_without_its_task_is_refused(argv, needs, model, capsys):
    assert needs in _refused(inference_options.parse_args, ["--weights", model, *argv], capsys)


def test_options_left_at_their_defaults_are_not_refused(model, tmp_path):
    picture = str(tmp_path / "a.jpg")
    shutil.copy(grace_hopper_path(), picture)
    args = inference_options.parse_args(["--weights", model, "--image", picture, "--split", "test",
                                         "--port", "8000", "--host", "127.0.0.1"])
    assert args.image == [picture]
    args = inference_options.parse_args(["--weights", model, "--serve", "--port", "0",
                                         "--max-upload-mb", "1e-6"])
    assert args.port == 0 and round(args.max_upload_mb * 1e6) == 1


def test_videos_take_stream_addresses_and_refuse_other_schemes(model, capsys):
    """An http(s):// or rtsp:// address is not a path to check (it is opened when read); an
    address of another scheme is refused at once, naming those that are read."""
    for address in ("http://127.0.0.1:8080/clip.mp4", "https://example.org/a.mp4",
                    "rtsp://user:pw@camera/live"):
        args = inference_options.parse_args(["--weights", model, "--video", address])
        assert args.video == address and args.smooth == 0 and args.stall_timeout == 10
    said = _refused(inference_options.parse_args,
                    ["--weights", model, "--video", "ftp://host/clip.mp4"], capsys)
    assert "ftp:// addresses are not read" in said and "http://, https://, rtsp://" in said


def test_smooth_and_stall_timeout_take_seconds(model, capsys):
    from adcorre.inference import media_analysis

    assert inference_options.DEFAULT_STALL_TIMEOUT_S == media_analysis.DEFAULT_STALL_TIMEOUT_S
    args = inference_options.parse_args(["--weights", model, "--video", "rtsp://cam/1",
                                         "--smooth", "0.5", "--stall-timeout", "2.5"])
    assert (args.smooth, args.stall_timeout) == (0.5, 2.5)
    for option, value in (("--smooth", "-1"), ("--stall-timeout", "0")):
        said = _refused(inference_options.parse_args,
                        ["--weights", model, "--video", "rtsp://cam/1", option, value], capsys)
        assert f"argument {option}: expected a number" in said


def test_an_upload_limit_under_one_byte_is_refused(model, capsys):
    said = _refused(inference_options.parse_args,
                    ["--weights", model, "--serve", "--max-upload-mb", "1e-7"], capsys)
    assert "argument --max-upload-mb: expected a number >= 1e-06 MB (1 byte), got '1e-7'" in said


# ---------------------------------------------------------------------------- synth


@pytest.mark.parametrize("name, words", [("sheet.txt", "expected a file ending in .png"),
                                         ("absent/sheet.png", "no folder")])
def test_a_preview_that_cannot_be_written_is_a_usage_error(name, words, tmp_path, capsys):
    path = str(tmp_path / name)
    said = _refused(synth.main, ["--preview", path, "--per-class", "1"], capsys)
    assert said.startswith("adcorre synth: error: argument --preview:") and words in said
    assert not os.path.exists(path)


def test_a_jpeg_preview_in_the_current_folder_is_written(tmp_path, monkeypatch, capsys):
    import cv2

    monkeypatch.chdir(tmp_path)
    assert synth.main(["--preview", "sheet.jpg", "--per-class", "2", "--image-size", "24"]) == 0
    assert cv2.imread(str(tmp_path / "sheet.jpg")).shape[0] == 7 * 24
    assert "preview: sheet.jpg" in capsys.readouterr().out


# ------------------------------------------------------------ a reader that leaves early


@pytest.mark.parametrize("argv", [["-m", "adcorre", "weights"],
                                  ["-m", "adcorre", "test", "--list-weights"],
                                  ["test.py", "--list-weights"]])
def test_a_closed_pipe_ends_quietly(argv, tmp_path):
    """`adcorre weights | head -1`: the reader has gone before the listing is written (its end
    of the pipe closed first, so the outcome does not hang on timing)."""
    reader, writer = os.pipe()
    os.close(reader)
    command = [sys.executable, *(os.path.join(REPO_ROOT, a) if a.endswith(".py") else a
                                 for a in argv)]
    try:
        run = subprocess.run(command, stdout=writer, stderr=subprocess.PIPE, text=True,
                             env=python_env(**CPU_ONLY), timeout=120, check=False, cwd=tmp_path)
    finally:
        os.close(writer)
    assert run.returncode == 1 and run.stderr == "", run.stderr[-2000:]


# ------------------------------------------------------------------ pictures and messages


def test_hidden_files_in_a_folder_are_not_pictures(tiny_file, tmp_path, capsys):
    shutil.copy(grace_hopper_path(), tmp_path / "face.jpg")
    (tmp_path / "._face.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    assert test_cli.main(["--weights", tiny_file, "--image", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "face.jpg" in printed and "._face.jpg" not in printed and "error" not in printed


def test_convert_says_grey_for_a_grey_model(fer_model, tmp_path, capsys):
    out = str(tmp_path / "fer.h5")
    assert convert.main([fer_model, out, "--labels", "fer2013", "--input-range=-1,1"]) == 0
    assert "; input grey 64x64 in [-1, 1]" in capsys.readouterr().out


def test_messages_name_what_a_user_can_set_not_our_internals(tmp_path):
    from adcorre import errors
    from adcorre.data import dataset_readers

    with pytest.raises(errors.DatasetNotFoundError) as missing:
        dataset_readers.find_data_dir("rafdb", str(tmp_path / "absent"), setting="--data-dir")
    with pytest.raises(errors.SettingError) as split:
        dataset_readers.read_split("synth", None, "tset")
    said = [str(missing.value), str(split.value), weights.describe()]
    assert "$FER_DATA_ROOT" in said[0] and "./data/rafdb" in said[0]
    assert "or a dataset type: train, " in said[1]
    assert not [text for text in said if "config." in text or "how_to_get" in text], said


def test_every_option_of_test_and_convert_has_help_with_its_default():
    for parser in (inference_options.build_parser(), convert.build_parser()):
        bare = [action.dest for action in parser._actions if not action.help]
        assert bare == [], bare
    assert "(default: 32)" in inference_options.build_parser().format_help()
