"""pamong.testing.free_port: a port is never handed out twice in one process (services bind
with SO_REUSEPORT, so two given one port would silently share its requests)."""

import socket

from pamong.testing import free_port


def test_free_ports_are_distinct_and_bindable():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:  # and free: nothing listens on them
        sock.bind(("127.0.0.1", ports[-1]))
