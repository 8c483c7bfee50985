"""A small HTTP file server on 127.0.0.1 for the zoo tests (a uniquely named helper module).

Serves in-memory files, honours `Range: bytes=N-`, logs every request, can cut the first
response of a file midway (the connection drops after half the bytes), and stops by itself
after `max_requests` requests or `lifetime` seconds, whichever comes first.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    def __init__(self, files: dict[str, bytes], max_requests: int = 40, lifetime: float = 60.0):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_once: set[str] = set()  # paths whose next response stops halfway
        self.ignore_range: set[str] = set()  # paths answered with the whole file even for a Range request
        self.content_type: dict[str, str] = {}
        self.max_requests = max_requests
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10

            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if len(server.requests) > server.max_requests:
                    self.send_error(503, "request limit of the test server reached")
                    threading.Thread(target=server.stop, daemon=True).start()
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404, "not found")
                    return
                start = 0
                requested = self.headers.get("Range")
                if requested and self.path not in server.ignore_range:
                    start = int(requested.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", server.content_type.get(self.path, "application/octet-stream"))
                self.end_headers()
                if self.path in server.cut_once:
                    server.cut_once.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True
        self._stopped = False

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def start(self) -> "FileServer":
        self.thread.start()
        self.timer.start()
        return self

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
