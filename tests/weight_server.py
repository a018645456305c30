"""A loopback HTTP server that serves weight files as a mirror would, and misbehaves on request.

`serving(files)` starts it on 127.0.0.1 (a free port) and yields it; `server.url` is its base
URL (what `ADCORRE_WEIGHTS_MIRROR` takes), `server.files` maps names to bytes, `server.requests`
lists the paths asked for, and `server.mode` says how it answers:

- `"whole"`: the file, with its Content-Length;
- `"short"`: the connection closes after half the announced bytes;
- `"chunk_cut"`: a chunked answer whose first chunk promises the whole file, cut after half;
- `"html"`: a login page (HTTP 200, text/html) instead of the file;
- `"slow"`: the file a byte every `server.delay` seconds (0.2), Content-Length announced;
- `"silent"`: the headers, then nothing for `server.delay` seconds, then the file.

Used only by the tests.
"""

import contextlib
import http.server
import threading
import time

# A handler that trickles gives up on its own after this long (the client normally leaves first).
_LONGEST_S = 60.0


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  (http.server's name)
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        mode = self.server.mode
        if mode == "html":
            self._headers(b"<!DOCTYPE html><html><body>Please log in</body></html>",
                          "text/html", send_body=True)
        elif mode == "chunk_cut":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % len(body) + body[:len(body) // 2])
        elif mode in ("slow", "silent"):
            self._headers(body)
            self._trickle(body, every_byte=mode == "slow")
        else:
            self._headers(body)
            self.wfile.write(body if mode == "whole" else body[:len(body) // 2])

    def _headers(self, body, content_type="application/octet-stream", send_body=False):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _trickle(self, body, every_byte):
        started = time.monotonic()
        try:
            if not every_byte:
                time.sleep(self.server.delay)
                self.wfile.write(body)
                return
            for offset in range(len(body)):
                if time.monotonic() - started > _LONGEST_S:
                    return
                self.wfile.write(body[offset:offset + 1])
                self.wfile.flush()
                time.sleep(self.server.delay)
        except OSError:
            return  # the client left

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(files):
    """Serves `files` (name -> bytes) on loopback until the block ends."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.requests, server.mode, server.delay = dict(files), [], "whole", 0.2
    server.url = f"http://127.0.0.1:{server.server_port}/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
