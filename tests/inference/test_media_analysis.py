"""Videos, webcams and folders to tables (media_analysis, TestModels.recognize_video, the CLI).

The videos are written here with OpenCV from real portraits (grace_hopper.jpg, skimage's
astronaut): every frame's rows must equal what `recognize_faces` (or, without a face,
`recognize_fer`) gives for that decoded frame, batching across frames allowed 1e-5 of float noise.
"""

import math
import os
import re
import signal
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
from adcorre import reports as media_analysis_reports
from adcorre.reports import plot_timeline
from video_files import (face_frames, people_frames, read_frames, sample_pictures, whose,
                         write_video)
from video_server import served

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


def _read_rows(path):
    """A video table's CSV read back with its dtypes (`person` may be empty: Int64)."""
    return pd.read_csv(path, dtype={"person": "Int64"})


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
    assert list(rows.columns) == ["frame", "time_s", "face", "person", "x", "y", "w", "h",
                                  "yaw", "pitch", "roll", "label", *EXPRESSIONS_7]
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
    pd.testing.assert_frame_equal(_read_rows(path), table)  # read with `person` as Int64
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
    assert lines[0].startswith("frame,time_s,face,person,x,y,w,h,yaw,pitch,roll,label,Neutral")
    assert "2 frames analysed" in printed.err


def test_cli_reads_a_served_clip_with_smoothing(model_file, tester, video, tmp_path, capsys):
    csv = tmp_path / "rows.csv"
    with served(video) as address:
        code = test_cli.main(["--weights", model_file, "--video", address, "--csv", str(csv),
                              "--smooth", "0.2", "--plot", str(tmp_path / "plot.png")])
    assert code == 0
    output = capsys.readouterr().out
    assert f"{address}: {FRAMES} frames analysed" in output and "people; rows written" in output
    expected = tester.recognize_video(video, smooth=0.2)
    pd.testing.assert_frame_equal(_read_rows(csv), expected, atol=TOLERANCE)
    assert cv2.imread(str(tmp_path / "plot.png")) is not None


def test_cli_stopped_by_sigterm_keeps_the_rows_and_exits_143(model_file, tmp_path, capsys,
                                                            monkeypatch):
    """40 frames, 16 crops a model call: SIGTERM comes in the second call."""
    video = write_video(tmp_path / "clip.mp4", face_frames(40), fps=FPS)
    calls = []
    real = TestModels.predict

    def predict(self, crops):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGTERM)
        return real(self, crops)

    monkeypatch.setattr(TestModels, "predict", predict)
    csv = tmp_path / "rows.csv"
    code = test_cli.main(["--weights", model_file, "--video", str(video), "--csv", str(csv)])
    assert code == 128 + signal.SIGTERM
    printed = capsys.readouterr()
    assert "stopped: " in printed.err and "stopped by SIGTERM after" in printed.err
    table = _read_rows(csv)
    analysed = table["frame"].nunique()
    assert 0 < analysed < 40 and sorted(table["frame"].unique()) == list(range(analysed))
    assert f"{analysed} frames analysed" in printed.out and f"rows written to {csv}" in printed.out


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


# ------------------------------------------------------------------------------------- people


def _crossing_paths(count=75):
    """Grace Hopper left to right (bobbing), the astronaut right to left, drawn in front: she
    hides Grace Hopper for about half a second in the middle of the 3 s clip."""
    grace = [(40 + 240 * i / (count - 1), 120 + 10 * math.sin(i / 10)) for i in range(count)]
    astronaut = [(280 - 240 * i / (count - 1), 125) for i in range(count)]
    return [grace, astronaut]


def _people_seen(table, owners):
    """`{true person: [(frame, person id), ...]}` over the rows with a face; every box must be
    on a face that shows (`video_files.whose`)."""
    seen = {}
    for _, row in table[table["x"].notna()].iterrows():
        who = whose(row[["x", "y", "w", "h"]].to_numpy(float), owners[int(row["frame"])])
        assert who is not None, f"frame {row['frame']}: a box on no face"
        seen.setdefault(who, []).append((int(row["frame"]), int(row["person"])))
    return seen


def test_two_people_crossing_keep_one_id_each_from_first_frame_to_last(tester, tmp_path):
    frames, _, owners = people_frames(_crossing_paths())
    clip = write_video(tmp_path / "crossing.mp4", frames, fps=FPS)
    table = tester.recognize_video(clip, csv_path=tmp_path / "rows.csv")
    seen = _people_seen(table, owners)
    grace, astronaut = ({person for _, person in seen[who]} for who in (0, 1))
    assert len(grace) == 1 and len(astronaut) == 1 and grace != astronaut
    # ... from the first frame to the last, each found in most frames;
    for who in (0, 1):
        frames_seen = [frame for frame, _ in seen[who]]
        assert frames_seen[0] == 0 and frames_seen[-1] == len(frames) - 1
        assert len(frames_seen) >= 0.8 * len(frames)
    # the clip does hide Grace Hopper behind the astronaut, for less than a second,
    hidden = sorted(set(range(len(frames))) - {frame for frame, _ in seen[0]})
    assert 5 <= len(hidden) < FPS and hidden[-1] - hidden[0] < FPS
    # and the largest face is not one person: `face` alone would have swapped them.
    largest = table[(table["face"] == 0) & table["x"].notna()]
    assert {whose(row[["x", "y", "w", "h"]].to_numpy(float), owners[int(row["frame"])])
            for _, row in largest.iterrows()} == {0, 1}
    assert table.attrs["people"] == 2
    back = pd.read_csv(tmp_path / "rows.csv")
    assert list(back["person"].dropna().astype(int)) == list(table["person"].dropna())


def test_a_face_hidden_under_a_second_keeps_its_id_one_hidden_longer_gets_a_new_one(tester,
                                                                                     tmp_path):
    """The rule: a person unseen for more than `people.DEFAULT_MEMORY_S` (1.5 s) is forgotten.
    Grace Hopper is out of sight for 0.8 s, the astronaut for 2.4 s."""
    count = 90

    def path(y, hidden):
        return [None if hidden[0] <= i < hidden[1] else (40 + 2.5 * i, y) for i in range(count)]

    frames, _, owners = people_frames([path(70, (15, 35)), path(180, (15, 75))])
    clip = write_video(tmp_path / "hidden.mp4", frames, fps=FPS)
    seen = _people_seen(tester.recognize_video(clip), owners)
    grace, astronaut = seen[0], seen[1]
    assert {person for _, person in grace} == {grace[0][1]}
    assert max(frame for frame, _ in grace) == count - 1 and min(frame for frame, _ in grace) == 0
    before = {person for frame, person in astronaut if frame < 15}
    after = {person for frame, person in astronaut if frame >= 75}
    assert len(before) == 1 and len(after) == 1 and before != after
    assert not (after & {grace[0][1]})


def test_smooth_averages_each_persons_probabilities_over_time(tester, tmp_path):
    frames = people_frames(_crossing_paths(40))[0]
    clip = write_video(tmp_path / "crossing.mp4", frames, fps=FPS)
    raw = tester.recognize_video(clip)
    smoothed = tester.recognize_video(clip, smooth=0.2)
    pd.testing.assert_frame_equal(smoothed[["frame", "face", "person", "x"]],
                                  raw[["frame", "face", "person", "x"]])
    names = list(EXPRESSIONS_7)
    for index, row in smoothed.iterrows():
        same = raw[(raw["person"].isna() if pd.isna(row["person"])
                    else raw["person"] == row["person"])]
        window = same[(same["time_s"] > row["time_s"] - 0.2 + 1e-9)
                      & (same["time_s"] <= row["time_s"])]
        expected = window[names].mean().to_numpy()
        np.testing.assert_allclose(row[names].to_numpy(float), expected, atol=1e-6)
        assert row["label"] == names[int(np.argmax(expected))]
    # The windows hold several frames: the smoothed rows are not the raw ones.
    assert not np.allclose(smoothed[names], raw[names])


def test_annotated_video_labels_each_box_with_its_person(tester, tmp_path, monkeypatch):
    drawn = []
    real = media_analysis.cv2.putText

    def put_text(frame, text, *args, **kwargs):
        drawn.append(text)
        return real(frame, text, *args, **kwargs)

    frames = people_frames(_crossing_paths(12))[0]
    clip = write_video(tmp_path / "crossing.mp4", frames, fps=FPS)
    monkeypatch.setattr(media_analysis.cv2, "putText", put_text)
    table = tester.recognize_video(clip, annotate_path=tmp_path / "out.avi")
    first = table[table["frame"] == 0]
    for _, row in first.iterrows():
        assert f"#{row['person']} {row['label']} {row[row['label']]:.2f}" in drawn
    assert len(read_frames(tmp_path / "out.avi")) == 12


def test_timeline_plot_has_one_panel_per_person(tester, tmp_path, monkeypatch):
    frames = people_frames(_crossing_paths(20))[0]
    table = tester.recognize_video(write_video(tmp_path / "c.mp4", frames, fps=FPS))
    panels = []
    real = media_analysis_reports.save_figure
    monkeypatch.setattr(media_analysis_reports, "save_figure",
                        lambda figure, path: (panels.append(len(figure.axes)), real(figure, path)))
    plot_timeline(table, EXPRESSIONS_7, tmp_path / "people.png")
    assert panels == [table["person"].nunique()] == [2]
    image = cv2.imread(str(tmp_path / "people.png"))
    assert image is not None and image.shape[0] > 300


# ------------------------------------------------------------------------------------ streams


def test_a_clip_served_over_http_gives_the_local_files_table(tester, video, rows):
    with served(video) as address:
        assert address.startswith("http://127.0.0.1:")
        remote = tester.recognize_video(address, batch_size=4)
    pd.testing.assert_frame_equal(remote, rows)
    assert remote.attrs["fps"] == FPS and remote.attrs["frames_read"] == FRAMES


@pytest.mark.parametrize("cut, said", [("stall", "stalled: no frame for 1 s"),
                                       ("close", "the stream ended early")])
def test_a_stream_that_stalls_or_ends_mid_clip_keeps_the_rows_so_far(tester, video, rows,
                                                                      tmp_path, cut, said):
    size = os.path.getsize(video)
    csv = tmp_path / "rows.csv"
    with served(video, cut_at=size // 2, cut=cut) as address:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            table = tester.recognize_video(address, csv_path=csv, stall_timeout=1.0)
    assert [said in str(w.message) for w in caught] == [True]
    analysed = table["frame"].nunique()
    assert 0 < analysed < FRAMES
    assert sorted(table["frame"].unique()) == list(range(analysed))
    expected = rows[rows["frame"] < analysed].reset_index(drop=True)
    pd.testing.assert_frame_equal(table, expected, check_exact=False, atol=TOLERANCE)
    pd.testing.assert_frame_equal(_read_rows(csv), table)


def test_an_address_that_does_not_answer_is_one_error_without_its_password(tester):
    with pytest.raises(media_analysis.VideoError, match="Cannot open stream") as error:
        tester.recognize_video("rtsp://viewer:s3cret@127.0.0.1:1/live", stall_timeout=2)
    assert "s3cret" not in str(error.value) and "viewer:***@127.0.0.1" in str(error.value)
    with pytest.raises(media_analysis.VideoError, match="expected a video file or an address"):
        tester.recognize_video("ftp://127.0.0.1/clip.mp4")


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "5"])
def test_stall_timeout_must_be_seconds(tester, video, timeout):
    with pytest.raises(ValueError, match="stall_timeout must be a number of seconds > 0"):
        tester.recognize_video(video, stall_timeout=timeout)


# ------------------------------------------------------------------------ long videos and stops


def test_rows_reach_the_csv_while_the_video_runs(tester, video, rows, tmp_path, monkeypatch):
    """Chunks of whole rows: with 4 rows a chunk the CSV holds them before the end."""
    monkeypatch.setattr(media_analysis, "CSV_CHUNK_ROWS", 4)
    csv = tmp_path / "rows.csv"
    seen_during = []
    real = tester.predict

    def predict(crops):
        if csv.exists():
            seen_during.append(len(pd.read_csv(csv)))
        return real(crops)

    monkeypatch.setattr(tester, "predict", predict)
    table = tester.recognize_video(video, csv_path=csv, batch_size=4, return_table=False)
    assert seen_during and 0 < max(seen_during) < FRAMES
    assert table.empty and list(table.columns) == list(rows.columns)
    assert table.attrs["rows"] == len(rows) and table.attrs["frames_analysed"] == FRAMES
    assert table.attrs["rows_with_face"] == int(rows["x"].notna().sum())
    pd.testing.assert_frame_equal(_read_rows(csv), rows, atol=TOLERANCE)


@pytest.mark.parametrize("stop", ["ctrl+c", "sigterm"])
def test_a_stopped_video_keeps_whole_rows_so_far(tester, video, rows, tmp_path, monkeypatch,
                                                  stop):
    calls = []
    real = tester.predict

    def predict(crops):
        calls.append(len(crops))
        if len(calls) == 3:
            if stop == "sigterm":
                signal.raise_signal(signal.SIGTERM)
            raise KeyboardInterrupt
        return real(crops)

    monkeypatch.setattr(tester, "predict", predict)
    csv, annotated = tmp_path / "rows.csv", tmp_path / "out.avi"
    with pytest.raises(media_analysis.VideoStopped) as stopped:
        tester.recognize_video(video, csv_path=csv, batch_size=2, annotate_path=annotated)
    number = signal.SIGTERM if stop == "sigterm" else signal.SIGINT
    assert stopped.value.signal_number == number
    assert f"stopped by {signal.Signals(number).name}" in str(stopped.value)
    assert str(csv) in str(stopped.value)
    table = stopped.value.table
    analysed = table["frame"].nunique()
    assert 0 < analysed < FRAMES
    pd.testing.assert_frame_equal(_read_rows(csv), table)
    pd.testing.assert_frame_equal(table, rows[rows["frame"] < analysed], check_exact=False,
                                  atol=TOLERANCE)
    assert 0 < len(read_frames(annotated)) <= FRAMES
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again


def test_progress_shows_the_time_left_or_for_streams_the_time_so_far():
    bar = media_analysis._Progress(250, enabled=False)
    bar.start, bar.done = 0.0, 100
    assert bar.text(4.0) == "[============..................] frame 100/250  25.0 frames/s  0:06 left "
    stream = media_analysis._Progress(0, enabled=False)
    stream.start, stream.done = 0.0, 4500
    assert stream.text(3723.0) == "frame 4500   1.2 frames/s  1:02:03 so far "
