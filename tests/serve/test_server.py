"""server.py, the web app and JSON API: answers against `TestModels.recognize_faces` on real
pictures, every bad input, 20 concurrent requests, the page's files, and `test.py --serve`.

The server runs in this process on a free loopback port (one thread per request, as the CLI
runs it); the answers it must give come from a second `TestModels` on the same file (conftest's
`tester` on `tiny_file`).
"""

import concurrent.futures
import os
import re
import signal
import socket
import threading
import time

import cv2
import numpy as np
import pytest
import requests

from adcorre.inference import face_crops
from adcorre.serve import server
from adcorre.config import EXPRESSIONS_7
from adcorre.inference.test_models import USER_ERRORS, TestModels
from helpers import REPO_ROOT, grace_hopper_path, skimage_data_path, start_python
from picture_files import write_grey_png, write_lying_jpeg
from web_clients import as_json, post_picture, read_bytes, two_faces_png


@pytest.fixture(scope="module")
def web(tiny_file):
    with server.RecognitionServer(TestModels(tiny_file, verbose=False), port=0,
                                  log_requests=False).start() as running:
        yield running


@pytest.fixture(scope="module")
def astronaut():
    return skimage_data_path("astronaut.png")


@pytest.fixture(scope="module")
def pictures(astronaut):
    """name -> encoded bytes: one face, another face (PNG), two faces, no face."""
    return {
        "grace.jpg": read_bytes(grace_hopper_path()),
        "astronaut.png": read_bytes(astronaut),
        "two_faces.png": two_faces_png(astronaut),
        "coffee.png": read_bytes(skimage_data_path("coffee.png")),
    }


# ------------------------------------------------------------------------------- the answers


@pytest.mark.parametrize("name", ["grace.jpg", "astronaut.png", "two_faces.png", "coffee.png"])
def test_answer_is_recognize_faces_of_the_picture(web, tester, pictures, name):
    response = post_picture(web.url, pictures[name], filename=name)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["faces"] == as_json(tester.recognize_faces(pictures[name]))
    height, width = face_crops.read_picture(pictures[name]).shape[:2]
    assert (answer["width"], answer["height"]) == (width, height)
    expected_faces = {"grace.jpg": 1, "astronaut.png": 1, "two_faces.png": 2, "coffee.png": 0}
    assert len(answer["faces"]) == expected_faces[name]
    areas = [face["box"][2] * face["box"][3] for face in answer["faces"]]
    assert areas == sorted(areas, reverse=True)  # largest first
    for face in answer["faces"]:
        assert list(face["probabilities"]) == list(EXPRESSIONS_7)
        assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_answer_from_a_file_path_matches_too(web, tester):
    # What the CLI's `--image grace_hopper.jpg` classifies is what the server answers.
    answer = post_picture(web.url, read_bytes(grace_hopper_path()), filename="grace.jpg").json()
    assert answer["faces"] == as_json(tester.recognize_faces(grace_hopper_path()))
    # The box is the detector's, in the picture's own pixels.
    face = face_crops.FaceDetector().detect(face_crops.read_picture(grace_hopper_path()))[0]
    assert answer["faces"][0]["box"] == list(face.box)


def test_whole_picture_only_when_asked_and_no_face(web, tester, pictures):
    coffee = pictures["coffee.png"]
    assert post_picture(web.url, coffee, whole="0").json()["faces"] == []
    whole = post_picture(web.url, coffee, whole="1").json()["faces"]
    assert whole == as_json([tester.recognize_fer(coffee)])
    assert whole[0]["box"] is None
    # A picture with a face is answered per face whatever `whole` says.
    grace = pictures["grace.jpg"]
    assert post_picture(web.url, grace, whole="1").json() == post_picture(web.url, grace).json()
    bad = post_picture(web.url, grace, whole="maybe")
    assert bad.status_code == 400 and bad.json() == {
        "error": "whole must be 1 or 0 (true or false), got 'maybe'."}


def test_model_and_health(web, tiny_file):
    assert requests.get(web.url + "api/health", timeout=30).json() == {"status": "ok"}
    response = requests.get(web.url + "api/model", timeout=30)
    assert response.json() == {
        "name": "tiny.h5", "kind": "project", "arch": "tiny", "labels": list(EXPRESSIONS_7),
        "input_size": [32, 32], "channels": 3, "input_range": [0.0, 1.0], "detector": "blazeface",
    }
    # The file name only: where the user keeps files is not told to whoever can reach the port.
    assert os.path.dirname(tiny_file) not in response.text
    answer = post_picture(web.url, read_bytes(grace_hopper_path())).json()
    assert answer["model"] == response.json()


# ------------------------------------------------------------------------------- bad input


def _error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"] and body["error"]
    return body["error"]


def _cli_words(tester, data):
    """The message the CLI prints (`error: ...`) for a picture with these bytes."""
    with pytest.raises(USER_ERRORS) as raised:
        tester.recognize_faces(data)
    return str(raised.value)


@pytest.mark.parametrize("data", [
    b"this is not a picture",
    b"",
    b"GIF89a" + bytes(40),                 # a header and nothing behind it
], ids=["text", "empty", "broken_gif"])
def test_bad_pictures_get_the_cli_message(web, tester, data):
    message = _error(post_picture(web.url, data, filename="upload.bin"), 400)
    assert message == _cli_words(tester, data)
    assert "expected a JPEG, PNG, BMP or GIF image" in message


def test_truncated_jpeg_gets_the_cli_message(web, tester):
    half = read_bytes(grace_hopper_path())[:30000]
    message = _error(post_picture(web.url, half), 400)
    assert message == _cli_words(tester, half)
    assert "truncated JPEG" in message


def test_wrong_field_and_missing_body(web):
    grace = read_bytes(grace_hopper_path())
    message = _error(post_picture(web.url, grace, field="photo"), 400)
    assert message == ("expected the picture in the field 'image' of a multipart/form-data "
                       "POST (curl -F image=@photo.jpg ...), got fields 'photo'.")
    as_text = requests.post(web.url + "api/recognize", files={"image": (None, "photo.jpg")},
                            timeout=30)
    assert _error(as_text, 400) == ("the field 'image' came as text, not as a file: send the "
                                     "picture's bytes as a file (curl -F image=@photo.jpg, with "
                                     "the @).")
    raw = requests.post(web.url + "api/recognize", data=grace,
                        headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert _error(raw, 400).endswith("got a body of type image/jpeg.")
    assert _error(requests.post(web.url + "api/recognize", timeout=30), 400).endswith(
        "got no body.")


def test_oversize_upload_is_refused_with_the_cap(web):
    data = b"\xff" * (server.MAX_UPLOAD_BYTES + 1)
    message = _error(post_picture(web.url, data), 413)
    assert re.fullmatch(r"the upload is \d+ bytes; the cap is 20 MB \(20000000 bytes\), "
                        r"set by --max-upload-mb\.", message), message


def test_a_form_of_many_parts_is_refused(web):
    parts = {f"field{i}": (None, "x") for i in range(1001)}  # Werkzeug's limit: 1000 parts
    response = requests.post(web.url + "api/recognize", files=parts, timeout=30)
    assert _error(response, 413) == ("the form has too many parts or too long text fields; "
                                     "expected one file in the field 'image'.")


def test_upload_cap_is_configurable(tester):
    grace = read_bytes(grace_hopper_path())
    with server.RecognitionServer(tester, port=0, max_upload_bytes=len(grace) - 1,
                                  log_requests=False).start() as small:
        assert "the cap is 0.061305 MB (61305 bytes)" in _error(post_picture(small.url, grace), 413)
    with server.RecognitionServer(tester, port=0, max_upload_bytes=len(grace) + 1000,
                                  log_requests=False).start() as enough:
        assert post_picture(enough.url, grace).status_code == 200
    with pytest.raises(ValueError, match="max_upload_bytes must be a positive"):
        server.RecognitionApp(tester, max_upload_bytes=0)


def test_decompression_bomb_is_refused(web, tmp_path):
    # 12000 x 12000 grey (144 MP, above pictures.MAX_FULL_DECODE_PIXELS) in 150 KB: the CLI
    # refuses this file ("... 12000 x 12000 PNG picture (144 MP) ... downscale it first").
    bomb = read_bytes(write_grey_png(str(tmp_path / "bomb.png"), 12000, 12000))
    assert len(bomb) < server.MAX_UPLOAD_BYTES
    response = post_picture(web.url, bomb, filename="bomb.png")
    assert 400 <= response.status_code < 500, response.text[:300]
    assert "12000 x 12000" in response.json()["error"]


def test_wrong_route_and_method(web):
    missing = requests.get(web.url + "api/nothing", timeout=30)
    assert _error(missing, 404).startswith("no such page: /api/nothing; this server has GET /")
    wrong = requests.get(web.url + "api/recognize", timeout=30)
    assert _error(wrong, 405) == "GET is not allowed on /api/recognize; use POST."
    assert wrong.headers["Allow"] == "POST"
    assert "GET" in requests.post(web.url + "api/model", timeout=30).headers["Allow"]
    # Only the page's own files are served from serve/static/, nothing beside them.
    for path in ("static/../server.py", "static/server.py", "static/.gitignore"):
        _error(requests.get(web.url + path, timeout=30), 404)


def test_server_keeps_serving_after_bad_input_and_errors(web, tester, monkeypatch):
    for data in (b"", b"nope", b"\x89PNG\r\n\x1a\n" + bytes(30)):
        assert post_picture(web.url, data).status_code == 400
    # A bug in recognition (not the request's fault) is a 500 with JSON, and the next
    # request is served normally.
    def broken(picture, whole=False):
        raise RuntimeError("simulated failure")
    monkeypatch.setattr(web.app.tester, "recognize_faces", broken)
    grace = read_bytes(grace_hopper_path())
    assert "RuntimeError: simulated failure" in _error(post_picture(web.url, grace), 500)
    # A model that outputs NaN: not valid JSON, so a 500 that says so rather than a broken body.
    monkeypatch.setattr(web.app.tester, "recognize_faces", lambda picture, whole=False: [
        {"label": "Happy", "probabilities": {"Happy": float("nan")}, "box": (1, 2, 3, 4)}])
    assert "not a finite number" in _error(post_picture(web.url, grace), 500)
    monkeypatch.undo()
    assert post_picture(web.url, grace).json()["faces"] == as_json(tester.recognize_faces(grace))


# ------------------------------------------------------------------------------ concurrency


def test_twenty_concurrent_requests_equal_the_sequential_answers(web, pictures):
    names = [list(pictures)[i % len(pictures)] for i in range(20)]
    sequential = {name: post_picture(web.url, pictures[name]).json() for name in pictures}
    start = threading.Barrier(len(names))

    def ask(name):
        start.wait()  # all 20 requests leave together
        return post_picture(web.url, pictures[name], filename=name)

    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        answers = list(pool.map(ask, names))
    for name, response in zip(names, answers):
        assert response.status_code == 200, response.text
        assert response.json() == sequential[name], name


# ---------------------------------------------------------------------------- the page itself


def test_page_and_its_files_come_from_this_server(web):
    page = requests.get(web.url, timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(referenced) == ["/static/app.js", "/static/style.css", "data:,"]
    for path, kind in (("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")):
        response = requests.get(web.url + path.lstrip("/"), timeout=30)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith(kind)
    # Nothing on the page points at another site (no CDN, fonts or analytics).
    for name in server.STATIC_FILES:
        with open(os.path.join(server.WEB_DIR, name), encoding="utf-8") as handle:
            assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", handle.read()), name


def test_busy_port_is_one_clear_error(tester):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(server.ServerStartError,
                           match=rf"cannot listen on 127.0.0.1:{port} .*pick another --port"):
            server.RecognitionServer(tester, port=port)
    with pytest.raises(server.ServerStartError, match="expected an address of this machine"):
        server.RecognitionServer(tester, host="192.0.2.1", port=0)


# ------------------------------------------------------------------------------------- CLI


def _first_line(process, timeout):
    """The child's first stdout line, or the test fails with its stderr."""
    lines = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or not lines[0]:
        process.kill()
        pytest.fail(f"no URL printed within {timeout} s; stderr: {process.stderr.read()[-3000:]}")
    return lines[0]


def test_cli_serve_prints_the_url_and_serves_until_ctrl_c(tiny_file, tester):
    process = start_python(script=os.path.join(REPO_ROOT, "test.py"),
                           argv=["--weights", tiny_file, "--serve", "--port", "0"])
    try:
        line = _first_line(process, timeout=180)
        match = re.match(r"Serving tiny\.h5 at (http://127\.0\.0\.1:\d+/); API: POST "
                         r"http://127\.0\.0\.1:\d+/api/recognize\. Ctrl\+C stops\.$", line.strip())
        assert match, line
        url = match.group(1)
        grace = read_bytes(grace_hopper_path())
        assert post_picture(url, grace).json()["faces"] == as_json(tester.recognize_faces(grace))
        assert post_picture(url, b"nope").status_code == 400
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    with pytest.raises(requests.ConnectionError):  # the port is free again
        requests.get(url + "api/health", timeout=5)


def test_cli_serve_options_are_checked_when_parsed(capsys):
    from adcorre.cli.inference_options import build_parser

    parser = build_parser()
    arguments = parser.parse_args(["--weights", "w.h5", "--serve"])
    assert (arguments.host, arguments.port, arguments.max_upload_mb) == ("127.0.0.1", 8000, 20.0)
    for option, value, words in (("--port", "70000", "expected a TCP port 0..65535"),
                                 ("--max-upload-mb", "0", "expected a number >= 1e-06 MB")):
        with pytest.raises(SystemExit):
            parser.parse_args(["--weights", "w.h5", "--serve", option, value])
        assert f"argument {option}: {words}" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one task at a time
        parser.parse_args(["--weights", "w.h5", "--serve", "--image", "a.jpg"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_decoded_size_is_the_readers(web):
    # An RGBA PNG of 3 x 5 pixels: the reported size is the picture's, not the model's.
    png = cv2.imencode(".png", np.zeros((5, 3, 4), np.uint8))[1].tobytes()
    answer = post_picture(web.url, png, whole="1").json()
    assert (answer["width"], answer["height"]) == (3, 5)
    assert answer["faces"][0]["box"] is None


# ---------------------------------------------------------- clients that leave, forms of two


def _leave_mid_upload(url):
    """A client that announces 200 000 bytes of multipart form, sends 2 000 and hangs up."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    head = (f"POST /api/recognize HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 200000\r\n\r\n")
    part = (b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(head.encode() + part + read_bytes(grace_hopper_path())[:2000])
        client.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while True:  # headers and body may come in separate packets: read to the end
                chunk = client.recv(65536)
                if not chunk:
                    return answer
                answer += chunk
        except OSError:
            return answer


def test_a_client_that_leaves_mid_upload_is_one_log_line_and_a_json_answer(web, caplog):
    """It was an AttributeError in the server's own error handler (a traceback in the log) and
    an HTML 500."""
    import logging

    with caplog.at_level(logging.INFO):
        answer = _leave_mid_upload(web.url)
        deadline = time.time() + 10
        while not [r for r in caplog.records if "disconnected" in r.getMessage()] and \
                time.time() < deadline:
            time.sleep(0.05)
    said = [r for r in caplog.records if r.name.startswith(("adcorre", "werkzeug"))]
    assert [r.getMessage() for r in said if "disconnected" in r.getMessage()], said
    assert len(said) == 1 and said[0].exc_info is None, [r.getMessage() for r in said]
    if answer:  # whoever still listens gets the JSON error
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b" 400 " in head.split(b"\r\n")[0] and b"application/json" in head
        assert b"the upload ended before" in body
    assert requests.get(web.url + "api/health", timeout=10).json() == {"status": "ok"}


def test_two_files_in_the_image_field_are_refused_naming_both(web):
    grace = read_bytes(grace_hopper_path())
    response = requests.post(web.url + "api/recognize", timeout=60, files=[
        ("image", ("first.jpg", grace, "image/jpeg")),
        ("image", ("second.jpg", grace, "image/jpeg"))])
    message = _error(response, 400)
    assert message == ("the field 'image' holds 2 files ('first.jpg', 'second.jpg'); expected "
                       "one picture per request: send each in a request of its own.")


def test_a_jpeg_header_that_lies_about_its_size_is_400_with_the_cli_message(web, tester,
                                                                           tmp_path):
    """It was decoded to a grey 4000 x 4000 picture and given a label."""
    data = read_bytes(write_lying_jpeg(str(tmp_path / "liar.jpg")))
    message = _error(post_picture(web.url, data), 400)
    assert message == _cli_words(tester, data) and "truncated JPEG" in message
