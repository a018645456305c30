"""Writing SynthFER's pictures: one encoder call per file, and a face placed in a larger photo.

The datasets' writers (`adcorre.data.datasets`) and the preview use these, so every picture
SynthFER writes is encoded the same way. This module imports only NumPy and OpenCV.

Example:
>>> import numpy as np
>>> face = np.zeros((32, 32, 3), np.uint8)
>>> photo, (x, y) = photo_around(face, np.random.default_rng(0))
>>> photo.shape[0] > 32 and 0 <= x <= photo.shape[1] - 32
True
"""

import os

import cv2
import numpy as np


def save_picture(path, image_rgb, quality=95):
    """Writes an RGB uint8 picture to `path` (JPEG at `quality`, or PNG by its suffix), making
    its folder.

    Raises:
        OSError: OpenCV cannot encode the picture (the writers pass `.jpg` and `.png` paths,
            `write_preview` checks its suffix first).
    """
    if os.path.dirname(path):  # "sheet.png" lies in the current folder, which is there
        os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(image_rgb[..., ::-1]), params)
    if not ok:
        # guard: OpenCV's own encoder refusing a picture we drew, by a suffix we chose
        raise OSError(f"Could not encode {path}.")
    buf.tofile(path)


def photo_around(face, rng):
    """`face` pasted at a random place into a larger, non-square photo of smooth colours.

    Returns:
        `(photo, (x, y))`: uint8 RGB and the face's top-left corner in it.
    """
    side = face.shape[0]
    width, height = (int(side * rng.uniform(1.25, 1.8)) for _ in range(2))
    photo = cv2.resize(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), (width, height),
                       interpolation=cv2.INTER_CUBIC)
    x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
    photo[y:y + side, x:x + side] = face
    return photo, (x, y)
