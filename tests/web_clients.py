"""Plumbing of the web app's tests (test_server.py, test_browser.py): a small model file, the
pictures, and HTTP calls to a running `server.RecognitionServer`."""


import cv2
import numpy as np
import requests

from adcorre.inference import face_crops
from helpers import grace_hopper_path


def two_faces_png(astronaut):
    """PNG bytes of grace_hopper.jpg with the astronaut beside it, smaller: two faces."""
    grace = face_crops.read_picture(grace_hopper_path())
    small = cv2.resize(face_crops.read_picture(astronaut), (300, 300), interpolation=cv2.INTER_AREA)
    canvas = np.full((grace.shape[0], grace.shape[1] + 300, 3), 255, np.uint8)
    canvas[:, :grace.shape[1]] = grace
    canvas[:300, grace.shape[1]:] = small
    return cv2.imencode(".png", canvas[..., ::-1])[1].tobytes()


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def post_picture(url, data, filename="picture.jpg", field="image", whole=None, timeout=120):
    """`POST url/api/recognize` with `data` as the multipart file `field`; the Response."""
    params = None if whole is None else {"whole": whole}
    return requests.post(url + "api/recognize", files={field: (filename, data)}, params=params,
                         timeout=timeout)


def as_json(faces):
    """What JSON makes of `TestModels.recognize_faces`' answer (box tuples become lists)."""
    return [{**face, "box": None if face["box"] is None else list(face["box"])} for face in faces]


# A picture's answer batched with other requests' pictures equals its answer alone up to float
# rounding (the model's kernels may sum in another order for another batch size).
BATCH_TOLERANCE = 1e-5


def assert_same_answer(answer, reference, atol=BATCH_TOLERANCE):
    """Two answers of `POST /api/recognize` (JSON) equal, probabilities within `atol`."""
    assert {k: v for k, v in answer.items() if k != "faces"} == \
        {k: v for k, v in reference.items() if k != "faces"}
    assert_same_faces(answer["faces"], reference["faces"], atol)


def assert_same_faces(faces, reference, atol=BATCH_TOLERANCE):
    """Two lists of face results equal: boxes, labels and keys exactly, probabilities within
    `atol`."""
    assert len(faces) == len(reference)
    for face, expected in zip(faces, reference):
        assert set(face) == set(expected)
        assert face["box"] == expected["box"] and face["label"] == expected["label"]
        assert list(face["probabilities"]) == list(expected["probabilities"])
        np.testing.assert_allclose(list(face["probabilities"].values()),
                                   list(expected["probabilities"].values()), rtol=0, atol=atol)
        for key in set(face) - {"box", "label", "probabilities"}:  # head pose, landmarks
            assert_close_values(face[key], expected[key], key)


def assert_close_values(value, expected, where):
    """Numbers, lists and `{name: point}` maps equal within 1e-4; None only to None."""
    if isinstance(expected, dict):
        assert isinstance(value, dict) and list(value) == list(expected), where
        for name in expected:
            assert_close_values(value[name], expected[name], f"{where}.{name}")
    elif expected is None or value is None:
        assert value is expected, where
    else:
        np.testing.assert_allclose(value, expected, rtol=0, atol=1e-4, err_msg=where)


def multipart_body(parts, boundary=b"adcorre-test-boundary"):
    """`(body, content type)` of a multipart/form-data form written byte by byte.

    Args:
        parts: `(name, filename, data)` byte strings (`filename` None for a text field); the
            names go into the headers as they are, whatever their encoding.
    """
    body = b""
    for name, filename, data in parts:
        disposition = b'form-data; name="' + name + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename + b'"'
        body += (b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n"
                 + (b"Content-Type: application/octet-stream\r\n" if filename is not None
                    else b"") + b"\r\n" + data + b"\r\n")
    body += b"--" + boundary + b"--\r\n"
    return body, "multipart/form-data; boundary=" + boundary.decode()


def read_http_answer(stream):
    """`(status, headers, body)` of the next HTTP/1.1 answer on a socket's `makefile("rb")`;
    `headers` lower-case names. Needs a Content-Length (this server always sends one)."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection instead of answering")
    headers = {}
    for line in iter(stream.readline, b"\r\n"):
        if not line:
            raise ConnectionError("the connection closed inside the headers")
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body
