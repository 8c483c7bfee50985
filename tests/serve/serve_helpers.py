"""Helpers of the `clipvideo serve` tests: a real uvicorn server on a free local port."""

import contextlib
import socket
import threading
import time

CLASSES = ["moving right", "rotating clockwise", "still green circle"]


@contextlib.contextmanager
def running_server(app):
    """Serve `app` with uvicorn on 127.0.0.1 on a free port in a thread; yields the base URL and
    stops (running the app's shutdown) on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
