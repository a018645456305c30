"""Videos, webcams and folders to tables (media_analysis, TestModels.recognize_video, the CLI).

The videos are written here with OpenCV from real portraits (grace_hopper.jpg, skimage's
astronaut): every frame's rows must equal what `recognize_faces` (or, without a face,
`recognize_fer`) gives for that decoded frame, batching across frames allowed 1e-5 of float noise.
"""

import math
import os
import re
import warnings

import cv2
import numpy as np
import pandas as pd
import pytest

from adcorre.inference import media_analysis
from adcorre.models import weights_io
from adcorre.models.cnn_model import CNNModel
from adcorre.config import EXPRESSIONS_7
from adcorre.cli import test as test_cli
from adcorre.inference.test_models import TestModels
from adcorre.reports import plot_timeline
from video_files import face_frames, read_frames, sample_pictures, write_video

FRAMES = 16
FPS = 25.0
# Batching changes the summation order of the model's arithmetic, nothing else.
TOLERANCE = 1e-5




@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    model = CNNModel().get_model("tiny", num_classes=7, weights=None, input_size=48,
                                 num_embeddings=2, embedding_size=8)
    path = tmp_path_factory.mktemp("model") / "tiny.h5"
    return str(weights_io.save_model(model, path, labels=EXPRESSIONS_7, arch="tiny"))


@pytest.fixture(scope="module")
def tester(model_file):
    return TestModels(model_file, verbose=False)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return str(write_video(path, face_frames(FRAMES), fps=FPS))


@pytest.fixture(scope="module")
def rows(tester, video):
    # batch_size 4: crops of several frames share each model call.
    return tester.recognize_video(video, batch_size=4)


def _expected(tester, frame):
    """What the picture API says for one decoded frame: every face, or the whole frame."""
    found = tester.recognize_faces(frame)
    return found if found else [tester.recognize_fer(frame)]


def _assert_rows_equal(got, expected):
    """`got`: the rows of one frame or picture; `expected`: `recognize_faces`-style results."""
    got = got.sort_values("face")
    assert list(got["face"]) == list(range(len(expected)))
    for (_, row), result in zip(got.iterrows(), expected):
        box = result["box"]
        if box is None:
            assert all(math.isnan(row[c]) for c in "xywh")
        else:
            assert tuple(int(row[c]) for c in "xywh") == box
        # The head pose of the face (NaN for the whole frame), as recognize_faces gives it.
        for angle in ("yaw", "pitch", "roll"):
            assert (math.isnan(row[angle]) if result[angle] is None
                    else row[angle] == pytest.approx(result[angle], abs=1e-9)), angle
        assert row["label"] == result["label"]
        np.testing.assert_allclose([row[name] for name in EXPRESSIONS_7],
                                   [result["probabilities"][name] for name in EXPRESSIONS_7],
                                   atol=TOLERANCE, rtol=0)


# ------------------------------------------------------------------------------------- videos


def test_rows_equal_recognize_faces_frame_by_frame(tester, video, rows):
    decoded = read_frames(video)
    assert len(decoded) == FRAMES
    assert list(rows.columns) == ["frame", "time_s", "face", "x", "y", "w", "h", "yaw",
                                  "pitch", "roll", "label", *EXPRESSIONS_7]
    assert sorted(rows["frame"].unique()) == list(range(FRAMES))
    np.testing.assert_allclose(rows["time_s"], rows["frame"] / FPS)
    faces = rows["x"].notna()
    # The clip must exercise both cases: frames with a face and frames without one.
    assert faces.any() and (~faces).any()
    for index, frame in enumerate(decoded):
        _assert_rows_equal(rows[rows["frame"] == index], _expected(tester, frame))
    assert rows.attrs["fps"] == FPS and rows.attrs["frames_read"] == FRAMES
    assert rows.attrs["frames_analysed"] == FRAMES


def test_every_nth_frame(tester, video, rows):
    sparse = tester.recognize_video(video, every=6)
    assert sorted(sparse["frame"].unique()) == list(range(0, FRAMES, 6))
    assert sparse.attrs["frames_read"] == FRAMES  # 13-15 are read after the last analysed
    assert sparse.attrs["frames_analysed"] == len(range(0, FRAMES, 6))
    dense = rows[rows["frame"] % 6 == 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(sparse[["frame", "time_s", "face", "x", "y", "w", "h", "label"]],
                                  dense[["frame", "time_s", "face", "x", "y", "w", "h", "label"]])
    np.testing.assert_allclose(sparse[list(EXPRESSIONS_7)], dense[list(EXPRESSIONS_7)],
                               atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("every", [0, -1, 1.5, "2", True])
def test_every_must_be_a_positive_integer(tester, video, every):
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        tester.recognize_video(video, every=every)


def test_detect_every_reuses_the_faces_of_the_last_detection(tester, video):
    table = tester.recognize_video(video, detect_every=4)
    decoded = read_frames(video)
    for index in range(FRAMES):
        detected_on = decoded[index - index % 4]
        faces = tester.detect(detected_on)
        got = table[table["frame"] == index]
        if faces:
            assert [tuple(int(v) for v in box) for box in got[["x", "y", "w", "h"]].to_numpy()] \
                == [face.box for face in faces]
            # ... and the crops are cut from the frame itself at those boxes.
            expected = tester.predict(tester.crops_of(decoded[index], faces)[0])
            np.testing.assert_allclose(got[list(EXPRESSIONS_7)], expected, atol=TOLERANCE)
        else:
            assert got["x"].isna().all() and len(got) == 1


def test_csv_round_trip(tester, video, rows, tmp_path):
    path = tmp_path / "rows.csv"
    table = tester.recognize_video(video, csv_path=path, batch_size=4)
    back = pd.read_csv(path)
    assert list(back.columns) == list(table.columns)
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert [p.name for p in tmp_path.iterdir()] == ["rows.csv"]  # no temporary file left


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_annotated_video_has_every_frame(tester, video, rows, tmp_path, suffix):
    out = tmp_path / f"annotated{suffix}"
    tester.recognize_video(video, annotate_path=out, every=2)
    written, source = read_frames(out), read_frames(video)
    assert len(written) == FRAMES
    assert written[0].shape == source[0].shape
    # A frame with a face shows its box: the pixels along the top edge changed.
    index = int(rows.loc[rows["x"].notna(), "frame"].iloc[0])
    index -= index % 2  # boxes shown on a frame are those of the latest analysed frame
    box = rows[(rows["frame"] == index) & (rows["face"] == 0)][["x", "y", "w", "h"]].to_numpy()[0]
    if not np.isnan(box[0]):
        x, y, w, _ = (int(v) for v in box)
        edge = (slice(y - 1, y + 2), slice(x + 5, x + w - 5))
        difference = np.abs(written[index][edge].astype(int) - source[index][edge].astype(int))
        assert difference.mean() > 20


def test_annotated_video_needs_a_known_suffix(tester, video, tmp_path):
    with pytest.raises(media_analysis.VideoError, match=r"\.mp4"):
        tester.recognize_video(video, annotate_path=tmp_path / "out.gif")
    assert list(tmp_path.iterdir()) == []


def test_missing_and_unreadable_videos(tester, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.mp4"):
        tester.recognize_video(tmp_path / "nothere.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all " * 50)
    with pytest.raises(media_analysis.VideoError, match="Cannot open video .*junk.mp4"):
        tester.recognize_video(junk)


def test_video_without_frames(tester, tmp_path):
    path = tmp_path / "empty.avi"
    cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48)).release()
    with pytest.raises(media_analysis.VideoError, match="empty.avi.* no frame"):
        tester.recognize_video(path, csv_path=tmp_path / "rows.csv")
    assert not (tmp_path / "rows.csv").exists()


def test_video_broken_in_the_middle_gives_rows_up_to_the_break_and_one_warning(tester, tmp_path):
    whole = write_video(tmp_path / "whole.avi", face_frames(FRAMES), FPS, codec="MJPG")
    data = open(whole, "rb").read()
    broken = tmp_path / "broken.avi"
    broken.write_bytes(data[:len(data) // 2])
    readable = len(read_frames(broken))
    assert 0 < readable < FRAMES
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = tester.recognize_video(broken)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "broken.avi" in message and "truncated or damaged" in message
    assert sorted(table["frame"].unique()) == list(range(readable))


def _capture_reporting(fps, timestamps=True):
    """cv2.VideoCapture as a file that stores `fps` (and, without `timestamps`, frames that all
    last 0 s) shows it."""
    real = cv2.VideoCapture

    class Reporting:
        def __init__(self, path):
            self.capture = real(path)

        def get(self, prop):
            if prop == cv2.CAP_PROP_FPS:
                return fps
            if prop == cv2.CAP_PROP_POS_MSEC and not timestamps:
                return 0.0
            return self.capture.get(prop)

        def __getattr__(self, name):
            return getattr(self.capture, name)

    return Reporting


def test_missing_frame_rate_is_assumed_with_a_warning(tester, video, monkeypatch):
    """No rate, and frames that all last 0 s: 25 fps, said once."""
    monkeypatch.setattr(media_analysis.cv2, "VideoCapture", _capture_reporting(0.0, False))
    with pytest.warns(UserWarning, match="no frame rate.*time_s assumes 25 fps"):
        table = tester.recognize_video(video, every=5)
    np.testing.assert_allclose(table["time_s"], table["frame"] / media_analysis.ASSUMED_FPS)


@pytest.mark.parametrize("stored", [0.5, 0.0, 1000.0, float("nan")])
def test_an_implausible_rate_gives_way_to_the_frames_timestamps(tester, tmp_path, monkeypatch,
                                                               stored):
    """An MP4 whose frames last 0 s was read at 0.5 fps (time_s up to 98 s for 4 s of video):
    a rate outside 1-240 fps is replaced by the timestamps' (here a 20 fps clip)."""
    clip = write_video(tmp_path / "clip20.mp4", face_frames(12), fps=20.0)
    monkeypatch.setattr(media_analysis.cv2, "VideoCapture", _capture_reporting(stored))
    with pytest.warns(UserWarning, match=r"time_s follows its frames' timestamps instead \(20 fps"):
        table = tester.recognize_video(clip, every=3)
    np.testing.assert_allclose(table["time_s"], table["frame"] / 20.0, rtol=1e-6)
    assert table.attrs["fps"] == pytest.approx(20.0)


def test_a_file_written_at_half_a_frame_a_second_is_read_at_25(tester, tmp_path):
    """Its own rate and its timestamps agree on 0.5 fps, which no camera records: 25."""
    clip = write_video(tmp_path / "slow.avi", face_frames(4), fps=0.5, codec="MJPG")
    with pytest.warns(UserWarning, match=r"stores 0.5 fps.*time_s assumes 25 fps"):
        table = tester.recognize_video(clip)
    np.testing.assert_allclose(table["time_s"], table["frame"] / 25.0)


@pytest.mark.parametrize("path, error, said", [
    ("/dev/zero", media_analysis.VideoError, "is not a regular file (a device or FIFO)"),
    ("/tmp", media_analysis.VideoError, "is a folder"),
    ("/nonexistent/clip.mp4", FileNotFoundError, "Video not found"),
])
def test_a_path_that_is_not_a_video_file_is_named_for_what_it_is(tester, path, error, said):
    """`--video /dev/zero` said "not found" for a path that exists."""
    if not os.path.exists(path) and error is not FileNotFoundError:
        pytest.skip(f"{path} does not exist on this system")
    with pytest.raises(error, match=re.escape(said)):
        tester.recognize_video(path)


def test_timeline_plot(rows, tmp_path):
    path = plot_timeline(rows, EXPRESSIONS_7, tmp_path / "timeline.png", title="clip")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] > 200
    with pytest.raises(ValueError, match="no row with face 0"):
        plot_timeline(rows[rows["face"] > 5], EXPRESSIONS_7, tmp_path / "none.png")


# ------------------------------------------------------------------------------------ webcams


class FakeCamera:
    """A capture object that plays frames (BGR), then fails, like a camera unplugged."""

    def __init__(self, frames, interrupt_at=None):
        self.frames = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        self.interrupt_at, self.read_count, self.released = interrupt_at, 0, False

    def read(self):
        if self.read_count == self.interrupt_at:
            raise KeyboardInterrupt
        if self.read_count >= len(self.frames):
            return False, None
        self.read_count += 1
        return True, self.frames[self.read_count - 1].copy()

    def release(self):
        self.released = True


def test_stream_rows_equal_recognize_faces_and_stop_when_asked(tester, tmp_path):
    frames = face_frames(6)
    shown = []

    def show(frame_bgr):
        shown.append(frame_bgr.copy())
        return len(shown) == 4  # the user pressed q on the 4th frame

    camera = FakeCamera(frames)
    table = media_analysis.recognize_stream(tester, camera, show=show, csv_path=tmp_path / "w.csv")
    assert camera.released and len(shown) == 4
    assert sorted(table["frame"].unique()) == [0, 1, 2, 3]
    assert list(table.columns) == list(pd.read_csv(tmp_path / "w.csv").columns)
    assert (np.diff(table.groupby("frame")["time_s"].first()) >= 0).all()
    for index in range(4):
        _assert_rows_equal(table[table["frame"] == index], _expected(tester, frames[index]))


def test_stream_keeps_the_rows_read_before_ctrl_c(tester, tmp_path):
    camera = FakeCamera(face_frames(5), interrupt_at=3)
    table = media_analysis.recognize_stream(tester, camera, csv_path=tmp_path / "w.csv")
    assert sorted(table["frame"].unique()) == [0, 1, 2] and camera.released
    assert sorted(pd.read_csv(tmp_path / "w.csv")["frame"].unique()) == [0, 1, 2]


def test_webcam_without_a_window_or_a_camera_is_one_clear_error(monkeypatch):
    headless = "GUI:" in cv2.getBuildInformation() and any(
        line.split(":", 1)[1].strip() == "NONE" for line in cv2.getBuildInformation().splitlines()
        if line.strip().startswith("GUI:"))
    if headless:
        with pytest.raises(media_analysis.VideoError, match="pip install 'opencv-python"):
            media_analysis.open_webcam(0)
    monkeypatch.setattr(media_analysis, "_require_display", lambda: None)
    # An index no machine has: no camera answers.
    with pytest.raises(media_analysis.VideoError, match="No camera at index 97"):
        media_analysis.open_webcam(97)


def test_no_display_is_named(monkeypatch):
    monkeypatch.setattr(media_analysis.cv2, "getBuildInformation", lambda: "  GUI:  GTK3\n")
    monkeypatch.setattr(media_analysis.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(media_analysis.VideoError, match="No display"):
        media_analysis.open_webcam(0)


# ------------------------------------------------------------------------------------ folders


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    for index, picture in enumerate(sample_pictures()):
        cv2.imwrite(str(root / f"portrait{index}.jpg"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "blank.png"), np.full((120, 160, 3), 128, np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "notes.txt").write_text("not a picture")
    return root


def test_folder_rows_one_per_face_and_one_per_broken_picture(tester, folder):
    paths = test_cli._picture_paths([str(folder)])
    table = tester.recognize_pictures(paths)
    assert list(table.columns) == ["path", "face", "x", "y", "w", "h", "yaw", "pitch", "roll",
                                   "label", *EXPRESSIONS_7, "error"]
    broken = table[table["path"].str.endswith("broken.jpg")]
    assert len(broken) == 1 and "broken.jpg" in broken["error"].iloc[0]
    assert broken[list(EXPRESSIONS_7)].isna().all(axis=None)
    for path in paths:
        if path.endswith("broken.jpg"):
            continue
        got = table[table["path"] == path]
        assert (got["error"] == "").all()
        picture = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        _assert_rows_equal(got, _expected(tester, picture))


def test_cli_folder_to_csv(model_file, folder, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    code = test_cli.main(["--weights", model_file, "--image", str(folder), "--csv", str(out)])
    assert code == 1  # one picture could not be read; the others have their rows
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    portraits = {f"portrait{i}.jpg" for i in range(len(sample_pictures()))}
    assert set(os.path.basename(p) for p in table["path"]) == portraits | {"blank.png",
                                                                          "broken.jpg"}
    assert "(1 pictures could not be read)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------- CLI


def test_cli_video_writes_csv_plot_and_annotated_video(model_file, video, tmp_path, capsys):
    csv, plot, annotated = tmp_path / "rows.csv", tmp_path / "plot.png", tmp_path / "out.avi"
    code = test_cli.main(["--weights", model_file, "--video", video, "--csv", str(csv), "--plot",
                   str(plot), "--annotate", str(annotated), "--every", "2"])
    assert code == 0
    output = capsys.readouterr().out
    assert f"{FRAMES // 2} frames analysed" in output and "rows written to" in output
    assert sorted(pd.read_csv(csv)["frame"].unique()) == list(range(0, FRAMES, 2))
    assert cv2.imread(str(plot)) is not None
    assert len(read_frames(annotated)) == FRAMES


def test_cli_video_without_csv_prints_the_rows(model_file, video, capsys):
    assert test_cli.main(["--weights", model_file, "--video", video, "--every", "8"]) == 0
    printed = capsys.readouterr()
    lines = printed.out.strip().splitlines()
    assert lines[0].startswith("frame,time_s,face,x,y,w,h,yaw,pitch,roll,label,Neutral")
    assert "2 frames analysed" in printed.err


def test_cli_errors(model_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # said before TensorFlow loads, naming the flag
        test_cli.main(["--weights", model_file, "--video", str(tmp_path / "none.mp4")])
    assert stop.value.code == 2
    assert "argument --video:" in capsys.readouterr().err
    for argv, message in [(["--image", "a.jpg", "--plot", "p.png"], "--plot goes with"),
                          (["--video", "v.mp4", "--explain", "e.png"], "--explain goes with"),
                          (["--image", "a.jpg", "b.jpg", "--explain", "e.png"], "exactly one"),
                          (["--video", "v.mp4", "--every", "0"], "integer >= 1"),
                          (["--dataset", "synth", "--max-samples", "5"], "--max-samples goes")]:
        with pytest.raises(SystemExit) as stop:
            test_cli.main(["--weights", model_file, *argv])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err
