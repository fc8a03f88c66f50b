"""pamong.launcher.wait_ready: a module answering slowly while it starts (make run on a busy
machine: a read timeout, which once ended `make run`) is not ready yet, not a crash."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pamong.launcher import wait_ready


class SlowThenReady(BaseHTTPRequestHandler):
    asked = 0
    release = threading.Event()

    def do_GET(self):  # noqa: N802 - the http.server interface
        type(self).asked += 1
        if type(self).asked == 1:  # the first ask outlasts the caller's timeout
            self.release.wait(10)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_slow_answer_is_waited_past_and_ready_is_then_seen():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowThenReady)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert wait_ready(url, within=10, ask_timeout=0.2)
        assert SlowThenReady.asked >= 2  # the first ask timed out, a later one saw 200
    finally:
        SlowThenReady.release.set()
        server.shutdown()
        server.server_close()


def test_nothing_listening_is_not_ready_once_the_time_is_up():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowThenReady)
    port = server.server_address[1]
    server.server_close()  # the port is free: every ask is refused
    assert not wait_ready(f"http://127.0.0.1:{port}", within=0.3, ask_timeout=0.2)
