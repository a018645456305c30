"""server.py, the web app and JSON API: answers against `TestModels.recognize_faces` on real
pictures, every bad input, 20 concurrent requests, the page's files, and `test.py --serve`.

The server runs in this process on a free loopback port (one thread per request, as the CLI
runs it); the answers it must give come from a second `TestModels` on the same file (conftest's
`tester` on `tiny_file`).
"""

import concurrent.futures
import io
import json
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
from prometheus_client.parser import text_string_to_metric_families

from adcorre.inference import face_crops
from adcorre.serve import server
from adcorre.config import EXPRESSIONS_7
from adcorre.inference.test_models import USER_ERRORS, TestModels
from helpers import REPO_ROOT, grace_hopper_path, skimage_data_path, start_python
from picture_files import write_grey_png, write_lying_jpeg
from web_clients import (
    BATCH_TOLERANCE,
    as_json,
    assert_same_answer,
    assert_same_faces,
    multipart_body,
    post_picture,
    read_bytes,
    read_http_answer,
    two_faces_png,
)


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
    # (The server recognises through `recognize_batch`, the pictures of concurrent requests
    # together.)
    def broken(pictures, whole=False, batch_size=16):
        raise RuntimeError("simulated failure")
    monkeypatch.setattr(web.app.tester, "recognize_batch", broken)
    grace = read_bytes(grace_hopper_path())
    assert "RuntimeError: simulated failure" in _error(post_picture(web.url, grace), 500)
    # A model that outputs NaN: not valid JSON, so a 500 that says so rather than a broken body.
    monkeypatch.setattr(web.app.tester, "recognize_batch", lambda pictures, whole=False,
                        batch_size=16: [[{"label": "Happy", "probabilities": {
                            "Happy": float("nan")}, "box": (1, 2, 3, 4)}] for _ in pictures])
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
        # Batched with others, a picture's probabilities may differ in float rounding only.
        assert_same_answer(response.json(), sequential[name], BATCH_TOLERANCE)


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


def test_a_client_that_leaves_mid_upload_never_reaches_the_app(web, caplog):
    """waitress reads a request's body whole before it calls the app: a client that hangs up
    mid-upload is dropped without an answer, a log line or a traceback, and is not counted.
    (Under Werkzeug's server it was an AttributeError in the server's own error handler, then
    one log line; the app still handles that case for servers that stream: next test.)"""
    import logging

    before = _requests_counted(web, "/api/recognize")
    with caplog.at_level(logging.INFO):
        answer = _leave_mid_upload(web.url)
        time.sleep(0.5)
    assert answer == b""
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING], \
        [r.getMessage() for r in caplog.records]
    assert _requests_counted(web, "/api/recognize") == before
    assert requests.get(web.url + "api/health", timeout=10).json() == {"status": "ok"}


def test_a_body_shorter_than_announced_is_one_log_line_and_a_json_answer(tester, caplog):
    """The app under a server that streams the body to it (Werkzeug's test client here): 200 000
    bytes announced, 2 000 sent."""
    import io
    import logging

    from werkzeug.test import EnvironBuilder, run_wsgi_app

    part = (b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + read_bytes(grace_hopper_path())[:2000])
    environ = EnvironBuilder(method="POST", path="/api/recognize", input_stream=io.BytesIO(part),
                             content_type="multipart/form-data; boundary=XyZ").get_environ()
    environ["CONTENT_LENGTH"] = "200000"  # what the client announced
    app = server.RecognitionApp(tester)
    try:
        with caplog.at_level(logging.INFO):
            body, status, headers = run_wsgi_app(app, environ, buffered=True)
    finally:
        app.close()
    said = [r for r in caplog.records if r.name.startswith("adcorre")]
    assert len(said) == 1 and said[0].exc_info is None, [r.getMessage() for r in said]
    assert "disconnected before its upload ended" in said[0].getMessage()
    assert status.startswith("400") and headers["Content-Type"] == "application/json"
    assert b"the upload ended before" in b"".join(body)


def _requests_counted(web, route):
    """`adcorre_http_requests_total` of `route` (all methods and statuses) in `/metrics`."""
    text = requests.get(web.url + "metrics", timeout=30).text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "adcorre_http_requests_total"
               and sample.labels["route"] == route)


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


# ------------------------------------------------------- HTTP/1.1: keep-alive and pipelining


def _host_port(url):
    host, port = url.split("//")[1].rstrip("/").split(":")
    return host, int(port)


def test_pipelined_post_and_get_on_one_connection_get_two_answers_in_order(web, tester):
    """Werkzeug's development server answered the POST and left the GET hanging."""
    grace = read_bytes(grace_hopper_path())
    body, content_type = multipart_body([(b"image", b"grace.jpg", grace)])
    host, port = _host_port(web.url)
    both = (f"POST /api/recognize HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body + \
        f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    with socket.create_connection((host, port), timeout=60) as client:
        client.sendall(both)  # the two requests in one write, before either answer
        stream = client.makefile("rb")
        first, second = read_http_answer(stream), read_http_answer(stream)
    status, headers, answer = first
    assert status == 200 and headers["content-type"] == "application/json"
    assert_same_faces(json.loads(answer)["faces"], as_json(tester.recognize_faces(grace)), 0)
    assert second[0] == 200 and json.loads(second[2]) == {"status": "ok"}


def test_keep_alive_serves_several_requests_on_one_connection(web):
    host, port = _host_port(web.url)
    with socket.create_connection((host, port), timeout=60) as client:
        stream = client.makefile("rb")
        for path in ("api/health", "api/model", "api/health"):
            client.sendall(f"GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            status, headers, _ = read_http_answer(stream)
            assert status == 200 and headers.get("connection", "").lower() != "close"


# ------------------------------------------------------------------ uploads: file names


def test_a_file_name_in_latin_1_bytes_is_accepted_and_shown_escaped(web, tester):
    """Issue 31: a multipart file name in Latin-1 (not UTF-8) bytes got "got no fields": Werkzeug
    dropped the whole form. Now the picture is recognised, and the name, where an answer names
    it, is shown with its odd bytes escaped."""
    grace = read_bytes(grace_hopper_path())
    for name in (b"caf\xe9.jpg", b"\x83t\x83@\x83C\x83\x8b.jpg"):  # Latin-1; Shift JIS
        body, content_type = multipart_body([(b"image", name, grace)])
        response = requests.post(web.url + "api/recognize", data=body,
                                 headers={"Content-Type": content_type}, timeout=60)
        assert response.status_code == 200, response.text
        assert response.json()["faces"] == as_json(tester.recognize_faces(grace))
    body, content_type = multipart_body([(b"image", b"caf\xe9.jpg", grace),
                                         (b"image", "naïve.jpg".encode(), grace)])
    response = requests.post(web.url + "api/recognize", data=body,
                             headers={"Content-Type": content_type}, timeout=60)
    assert _error(response, 400).startswith(
        "the field 'image' holds 2 files ('caf\\\\xe9.jpg', 'naïve.jpg'); expected one picture")


def test_a_missing_field_stays_a_400_naming_it_whatever_the_file_name(web):
    grace = read_bytes(grace_hopper_path())
    body, content_type = multipart_body([(b"photo", b"caf\xe9.jpg", grace),
                                         (b"caption", None, b"caf\xe9")])
    response = requests.post(web.url + "api/recognize", data=body,
                             headers={"Content-Type": content_type}, timeout=60)
    assert _error(response, 400) == (
        "expected the picture in the field 'image' of a multipart/form-data POST "
        "(curl -F image=@photo.jpg ...), got fields 'caption', 'photo'.")


# ---------------------------------------------------------------------------- GET /metrics


def _samples(url):
    text = requests.get(url + "metrics", timeout=30).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_requests_errors_latencies_batches_and_name_the_model(tester):
    with server.RecognitionServer(tester, port=0, log_requests=False).start() as fresh:
        metrics = requests.get(fresh.url + "metrics", timeout=30)
        assert metrics.status_code == 200
        assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        grace = read_bytes(grace_hopper_path())
        for _ in range(3):
            assert post_picture(fresh.url, grace).status_code == 200
        assert post_picture(fresh.url, b"nope").status_code == 400
        assert requests.get(fresh.url + "api/health", timeout=30).status_code == 200
        assert requests.get(fresh.url + "no/such/page", timeout=30).status_code == 404
        assert requests.get(fresh.url + "api/recognize", timeout=30).status_code == 405
        samples = _samples(fresh.url)

    def value(metric, **labels):
        return samples.get((metric, tuple(sorted(labels.items()))), 0.0)

    recognize = "/api/recognize"
    assert value("adcorre_http_requests_total", route=recognize, method="POST", status="200") == 3
    assert value("adcorre_http_requests_total", route=recognize, method="POST", status="400") == 1
    assert value("adcorre_http_requests_total", route=recognize, method="GET", status="405") == 1
    assert value("adcorre_http_requests_total", route="/api/health", method="GET",
                 status="200") == 1
    assert value("adcorre_http_requests_total", route="unmatched", method="GET",
                 status="404") == 1  # the made-up path is not a label
    assert value("adcorre_http_requests_total", route="/metrics", method="GET", status="200") == 1
    assert value("adcorre_http_errors_total", route=recognize, status="400") == 1
    assert value("adcorre_http_errors_total", route=recognize, status="405") == 1
    assert value("adcorre_http_errors_total", route="unmatched", status="404") == 1
    assert ("adcorre_http_errors_total", (("route", recognize), ("status", "200"))) not in samples
    # The latency histogram: 5 answers on the route, every one under the +Inf bucket.
    assert value("adcorre_http_request_duration_seconds_count", route=recognize) == 5
    assert value("adcorre_http_request_duration_seconds_bucket", route=recognize, le="+Inf") == 5
    assert 0 < value("adcorre_http_request_duration_seconds_sum", route=recognize) < 300
    # Three pictures went to the model (one request at a time: three calls of one); the
    # picture that did not decode never reached it.
    assert value("adcorre_batch_size_sum") == 3 and value("adcorre_batch_size_count") == 3
    assert value("adcorre_batch_size_bucket", le="1.0") == 3
    assert value("adcorre_batch_wait_seconds_count") == 3
    assert value("adcorre_model_info", name="tiny.h5", kind="project", arch="tiny",
                 detector="blazeface", input_size="32x32") == 1


# ------------------------------------------------------------------------- batching, workers


def test_concurrent_requests_share_model_calls_and_keep_their_answers(tester, pictures):
    names = ["grace.jpg", "astronaut.png", "two_faces.png", "coffee.png"] * 2
    alone = {name: as_json(tester.recognize_faces(pictures[name], whole=True))
             for name in pictures}
    # A long wait, so the 8 requests (sent at once) surely meet in batches of up to 4.
    with server.RecognitionServer(tester, port=0, log_requests=False, max_batch=4,
                                  max_wait_ms=1000).start() as batched:
        start = threading.Barrier(len(names))

        def ask(name):
            start.wait()
            return post_picture(batched.url, pictures[name], filename=name, whole="1")

        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            answers = list(pool.map(ask, names))
        samples = _samples(batched.url)
    for name, response in zip(names, answers):
        assert response.status_code == 200, response.text
        assert_same_faces(response.json()["faces"], alone[name], BATCH_TOLERANCE)
    calls = samples[("adcorre_batch_size_count", ())]
    assert samples[("adcorre_batch_size_sum", ())] == len(names)
    assert calls < len(names), "every request had a model call of its own"
    assert samples[("adcorre_batch_size_bucket", (("le", "4.0"),))] == calls  # never above 4


def test_create_app_is_the_app_for_other_wsgi_servers(tiny_file, tester):
    from werkzeug.test import Client

    app = server.create_app(tiny_file, max_batch=2, max_wait_ms=0, detector="haar")
    try:
        assert isinstance(app, server.RecognitionApp)
        assert (app.max_batch, app.max_wait_ms) == (2, 0.0)
        assert app.model["detector"] == "haar" and app.model["name"] == "tiny.h5"
        grace = read_bytes(grace_hopper_path())
        answer = Client(app).post("/api/recognize", data={"image": (io.BytesIO(grace), "g.jpg")})
        reference = TestModels(tiny_file, detector="haar", verbose=False)
        assert answer.json["faces"] == as_json(reference.recognize_faces(grace))
    finally:
        app.close()


def test_cli_batching_and_workers_options(capsys):
    from adcorre.cli.inference_options import build_parser, parse_args

    parser = build_parser()
    arguments = parser.parse_args(["--weights", "w.h5", "--serve"])
    assert (arguments.max_batch, arguments.max_wait_ms, arguments.workers) == (8, 10.0, 1)
    arguments = parser.parse_args(["--weights", "w.h5", "--serve", "--max-batch", "16",
                                   "--max-wait-ms", "0"])
    assert (arguments.max_batch, arguments.max_wait_ms) == (16, 0.0)
    for option, value, words in (("--max-batch", "0", "expected an integer >= 1"),
                                 ("--max-wait-ms", "-1", "expected a number >= 0 ms")):
        with pytest.raises(SystemExit):
            parser.parse_args(["--weights", "w.h5", "--serve", option, value])
        assert f"argument {option}: {words}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--weights", grace_hopper_path(), "--serve", "--workers", "3"])
    assert stopped.value.code == 2
    said = capsys.readouterr().err
    assert "--workers 3: the server of --serve (waitress) runs in one process" in said
    assert "gunicorn -w 3" in said and "adcorre.serve.server:create_app(" in said
    for option, value in (("--max-batch", "4"), ("--max-wait-ms", "2"), ("--workers", "2")):
        with pytest.raises(SystemExit):
            parse_args(["--weights", grace_hopper_path(), "--image", grace_hopper_path(),
                        option, value])
        assert f"{option} goes with --serve" in capsys.readouterr().err


def test_close_lets_the_requests_already_running_answer(tester, monkeypatch):
    """Stopping frees the port, but a request the model is working on still gets its answer."""
    grace = read_bytes(grace_hopper_path())
    web = server.RecognitionServer(tester, port=0, log_requests=False).start()
    real = web.app.tester.recognize_batch
    entered = threading.Event()

    def slow(pictures, whole=False, batch_size=16):
        entered.set()
        time.sleep(1.5)
        return real(pictures, whole=whole, batch_size=batch_size)

    monkeypatch.setattr(web.app.tester, "recognize_batch", slow)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post_picture, web.url, grace)
        assert entered.wait(60)
        web.close()  # while the picture is in the model
        answer = pending.result(timeout=60)
    assert answer.status_code == 200 and len(answer.json()["faces"]) == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(web.url + "api/health", timeout=5)
