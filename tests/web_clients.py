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
