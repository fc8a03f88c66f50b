"""A TCP forwarder a test controls, to take a server away from one service without stopping it.

    proxy = TcpProxy("127.0.0.1", 5672)   # the service's AMQP_URI points at proxy.port
    proxy.cut()       # connections reset, new ones refused: the server looks down
    proxy.freeze()    # connections accepted, nothing forwarded: the server looks hung
    proxy.restore()   # forwarding again
    proxy.close()
"""

from eventlet import patcher

# real OS threads and sockets, whatever eventlet has patched: the proxy's blocking reads then
# never register with the test process's hub (a green socket closed under a green reader left
# its listener behind, and a later fd of that number failed "second simultaneous read")
socket = patcher.original("socket")
threading = patcher.original("threading")
time = patcher.original("time")


class TcpProxy:
    def __init__(self, host, port):
        self.target = (host, port)
        self.frozen = False
        self.listener = None
        self.connections = set()
        with socket.socket() as probe:  # a free port, kept across cut() and restore()
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listen()

    def _listen(self):
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was closed by cut() or close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source, sink):
        try:
            while data := source.recv(65536):
                while self.frozen:  # hold the bytes: the peer waits for an answer
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _close(sock)
                self.connections.discard(sock)

    def cut(self):
        """Refuse new connections and reset the open ones."""
        _close(self.listener)
        for sock in list(self.connections):
            _close(sock)
        self.connections.clear()

    def freeze(self):
        self.frozen = True

    def restore(self):
        self.frozen = False
        if self.listener.fileno() == -1:
            self._listen()

    def close(self):
        self.frozen = False
        self.cut()


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() or accept()
    except OSError:
        pass
    sock.close()
