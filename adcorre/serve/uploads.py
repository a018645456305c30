"""The picture of a `POST /api/recognize`: the multipart field `image`, or one clear 4xx.

Werkzeug parses the form. Its parser reads each part's headers as UTF-8 and, meeting other bytes
(a file name in Latin-1 or Shift JIS, as some clients send it), drops the whole form without a
word: the request then looked like one with no fields. So the headers of the parts are read
first, and any byte in them that is not UTF-8 is written as the text `\\xNN`: the file name
arrives, escaped (`caf\\xe9.jpg`), and the picture with it.

Example (a Werkzeug request; `RecognitionApp` calls this for every upload):

>>> from werkzeug.test import EnvironBuilder
>>> from werkzeug.wrappers import Request
>>> body = (b'--B\\r\\nContent-Disposition: form-data; name="image"; filename="caf\\xe9.jpg"'
...         b'\\r\\n\\r\\nPICTURE\\r\\n--B--\\r\\n')
>>> request = Request(EnvironBuilder(method="POST", data=body,
...                   content_type="multipart/form-data; boundary=B").get_environ())
>>> upload = picture_upload(request)
>>> upload.filename, upload.read()
('caf\\\\xe9.jpg', b'PICTURE')
"""

import io
import re

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request

from adcorre.errors import AdCorreError

# The multipart field that carries the picture.
IMAGE_FIELD = "image"


class UploadError(AdCorreError, ValueError):
    """A request to the API that is not what it expects; `status` is the HTTP code."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def picture_upload(request):
    """The one file of the field `IMAGE_FIELD` (a Werkzeug `FileStorage`).

    Args:
        request: a Werkzeug `Request` (its `max_content_length` is the upload cap).

    Returns:
        the `FileStorage`; `filename` has every byte that is not UTF-8 as `\\xNN`.

    Raises:
        UploadError: no such field (naming the fields that came), the field as text, two files.
        werkzeug's RequestEntityTooLarge: a body over `max_content_length`; ClientDisconnected:
            a body shorter than its Content-Length.
    """
    request = _with_part_headers_escaped(request)
    uploads = request.files.getlist(IMAGE_FIELD)
    if len(uploads) > 1:
        names = ", ".join(repr(upload.filename or "unnamed") for upload in uploads)
        raise UploadError(
            f"the field '{IMAGE_FIELD}' holds {len(uploads)} files ({names}); expected one "
            "picture per request: send each in a request of its own.")
    if not uploads and IMAGE_FIELD in request.form:
        raise UploadError(
            f"the field '{IMAGE_FIELD}' came as text, not as a file: send the picture's "
            f"bytes as a file (curl -F {IMAGE_FIELD}=@photo.jpg, with the @).")
    if not uploads:
        raise UploadError(_missing_field_message(request))
    return uploads[0]


def _missing_field_message(request):
    sent = sorted(set(request.files) | set(request.form))
    if not request.mimetype.startswith("multipart/"):
        got = f"a body of type {request.mimetype}" if request.mimetype else "no body"
    else:
        got = "fields " + ", ".join(map(repr, sent)) if sent else "no fields"
    return (f"expected the picture in the field '{IMAGE_FIELD}' of a multipart/form-data "
            f"POST (curl -F {IMAGE_FIELD}=@photo.jpg ...), got {got}.")


def _with_part_headers_escaped(request):
    """`request`, or a copy whose multipart body has its part headers made UTF-8."""
    boundary = request.mimetype_params.get("boundary", "")
    if request.mimetype != "multipart/form-data" or not boundary:
        return request
    body = request.get_data(cache=True)  # the form is then parsed from these bytes
    if request.content_length is not None and len(body) < request.content_length:
        raise ClientDisconnected()  # reading it all does not say so by itself
    escaped = escape_part_headers(body, boundary.encode("latin-1", "replace"))
    if escaped is body:
        return request
    environ = dict(request.environ, **{"wsgi.input": io.BytesIO(escaped),
                                       "CONTENT_LENGTH": str(len(escaped))})
    copy = Request(environ)
    # The escapes lengthen the body; the cap was checked on the bytes that came.
    copy.max_content_length = max(request.max_content_length or 0, len(escaped))
    return copy


def escape_part_headers(body, boundary):
    """`body` with each byte of its parts' header lines that is not UTF-8 written `\\\\xNN`.

    The escape is the two-backslash form because the header's quoted strings (a file name)
    take `\\\\` for one backslash. Returns `body` itself (the same object) when nothing changed.

    Args:
        body: a multipart body (bytes).
        boundary: its boundary (bytes, without the leading `--`).
    """
    # A delimiter line (at the start or after a line break), then the part's header lines up to
    # the blank line. A delimiter cannot occur inside a part's data, by the format's definition.
    pattern = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary) + rb"[ \t]*\r?\n(.*?)\r?\n\r?\n",
                         re.DOTALL)
    pieces, last = [], 0
    for match in pattern.finditer(body):
        head = match.group(1)
        if _is_utf8(head):
            continue
        pieces += [body[last:match.start(1)], _escape_non_utf8(head)]
        last = match.end(1)
    if not pieces:
        return body
    return b"".join(pieces + [body[last:]])


def _is_utf8(data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _escape_non_utf8(data):
    out = []
    while True:
        try:
            out.append(data.decode("utf-8"))
            return "".join(out).encode("utf-8")
        except UnicodeDecodeError as error:
            out.append(data[:error.start].decode("utf-8"))
            out.append("".join(f"\\\\x{byte:02x}" for byte in data[error.start:error.end]))
            data = data[error.end:]
