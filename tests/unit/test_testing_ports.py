"""pamong.testing.free_port: a port is never handed out twice in one process (services bind
with SO_REUSEPORT, so two given one port would silently share its requests), and never one
the kernel may give an outgoing connection meanwhile (a server restarted on its port could
not bind it again)."""

import socket

from pamong.testing import _ephemeral_low, free_port


def test_free_ports_are_distinct_and_bindable():
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    with socket.socket() as sock:  # and free: nothing listens on them
        sock.bind(("127.0.0.1", ports[-1]))


def test_free_ports_lie_below_the_ephemeral_range():
    low = _ephemeral_low()
    with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
        assert low == int(file.read().split()[0])
    ports = [free_port() for _ in range(300)]
    assert all(1024 <= port < low for port in ports), sorted(ports)[-5:]
    assert not {25672, 27017} & set(ports)  # the local stack's own


def test_a_port_something_listens_on_is_not_handed_out():
    # 500 listeners on the range's upper half: 300 draws without the check would hit
    # some 15 of them
    low, listeners = _ephemeral_low(), []
    try:
        for port in range(low - 5000, low, 10):
            listener = socket.socket()
            try:
                listener.bind(("127.0.0.1", port))
                listener.listen()
                listeners.append(listener)
            except OSError:  # (taken already)
                listener.close()
        taken = {listener.getsockname()[1] for listener in listeners}
        assert len(taken) > 400
        assert not {free_port() for _ in range(300)} & taken
    finally:
        for listener in listeners:
            listener.close()
