"""A video file served over HTTP on 127.0.0.1, as a web server or camera would (test helper).

OpenCV's FFmpeg reads an MP4 over HTTP with Range requests: the index (`moov` box) OpenCV's
writer puts at the end is fetched first, then the frames from the start. Python's `http.server`
answers no Range request, so this handler does (one `bytes=START-[END]` range, as FFmpeg asks).
It can also misbehave the two ways a stream breaks, from a byte of the frames on: stop sending
and hold the connection open (a stall), or close the connection and refuse the frames beyond
(a server gone). The index stays served: the player opened the stream before it broke.
"""

import contextlib
import http.server
import os
import re
import threading
import time


@contextlib.contextmanager
def served(path, cut_at=None, cut="stall"):
    """Serves the file `path` at `http://127.0.0.1:PORT/<its name>`; yields that address.

    Args:
        path: the file.
        cut_at: a byte offset among the frames; no byte from there to the index is ever sent
            (None: the whole file).
        cut: what the server does at `cut_at`: "stall" (holds the connection, silent, until the
            test ends) or "close" (closes it; later requests for the bytes cut get 416).
    """
    with open(path, "rb") as handle:
        data = handle.read()
    released = threading.Event()
    index = data.rfind(b"moov") - 4  # where the box starts: its size comes before its name
    gap = (cut_at, max(cut_at, index)) if cut_at is not None else (len(data), len(data))

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the tests read the table, not the log
            pass

        def do_GET(self):
            start, end = 0, len(data) - 1
            asked = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if asked:
                start = int(asked.group(1))
                end = min(end, int(asked.group(2))) if asked.group(2) else end
            if gap[0] <= start < gap[1] and cut == "close":
                self.send_error(416)
                return
            self.send_response(206 if asked else 200)
            if asked:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Content-Type", "video/mp4")
            self.end_headers()
            body = data[start:end + 1]
            if start >= gap[1] or end < gap[0]:
                self.wfile.write(body)
                return
            self.wfile.write(body[:max(0, gap[0] - start)])
            self.wfile.flush()
            if cut == "stall":
                released.wait(60)
            self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{os.path.basename(path)}"
    finally:
        released.set()
        server.shutdown()
        server.server_close()
        time.sleep(0)  # let the handler threads see the release
