"""Does a server answer?  Used by deploy/local/stack.sh; standard library only.

    probe.py amqp  AMQP_URI            AMQP 0-9-1 handshake (Connection.Start received)
    probe.py mgmt  MANAGEMENT_URL      RabbitMQ management API: GET /api/overview answers 200
    probe.py mongo MONGO_URI           MongoDB wire protocol: {hello: 1} answers ok and the
                                       server is a writable primary (so a replica set that is
                                       still electing does not count); pymongo when importable,
                                       else a raw OP_MSG
    probe.py mongo-raw MONGO_URI       the same with the raw OP_MSG only (fast; no auth, no TLS)
    probe.py hostport URI              prints "host port" of the (first) server in URI

Exit status 0 when the server answers, 1 otherwise (the reason goes to stderr).
"""

import base64
import json
import socket
import struct
import sys
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

TIMEOUT = 3.0


def _hostports(uri, default_port):
    parts = urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    out = []
    for item in netloc.split(","):
        if item.startswith("["):  # [ipv6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":") or default_port
        else:
            host, _, port = item.partition(":")
            port = port or default_port
        out.append((host or "127.0.0.1", int(port)))
    return out


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("connection closed by server")
        data += chunk
    return data


def probe_amqp(uri):
    default = 5671 if uri.startswith("amqps") else 5672
    host, port = _hostports(uri, default)[0]
    if uri.startswith("amqps"):
        # TLS: a TCP connect is all we check
        socket.create_connection((host, port), timeout=TIMEOUT).close()
        return
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame_type, channel, size = struct.unpack(">BHI", _recv_exact(sock, 7))
        payload = _recv_exact(sock, size)
        class_id, method_id = struct.unpack(">HH", payload[:4])
        if (frame_type, channel, class_id, method_id) != (1, 0, 10, 10):
            raise ConnectionError(f"{host}:{port} does not speak AMQP 0-9-1")


def probe_mgmt(url):
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 15672)
    user = unquote(parts.username or "guest")
    password = unquote(parts.password or "guest")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"management URL must be http(s), not {url!r}")
    target = f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}/api/overview"
    request = urllib.request.Request(target)  # noqa: S310 (scheme checked above)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        body = json.load(response)
    if "rabbitmq_version" not in body:
        raise ConnectionError(f"{target} answered without rabbitmq_version")


def _bson_hello():
    # {"hello": 1, "$db": "admin"}
    elements = b"\x10hello\x00" + struct.pack("<i", 1)
    elements += b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    return struct.pack("<i", len(elements) + 5) + elements + b"\x00"


def probe_mongo(uri, raw=False):
    try:
        import pymongo
    except ImportError:
        pymongo = None
    if raw:
        pymongo = None
    if pymongo is not None:
        client = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=int(TIMEOUT * 1000), connectTimeoutMS=int(TIMEOUT * 1000)
        )
        try:
            reply = client.admin.command("hello")
        finally:
            client.close()
        if not reply.get("isWritablePrimary"):
            raise ConnectionError("the server answers but is not (yet) a writable primary")
        return
    host, port = _hostports(uri, 27017)[0]
    body = struct.pack("<I", 0) + b"\x00" + _bson_hello()  # flagBits, section kind 0, document
    header = struct.pack("<iiii", 16 + len(body), 1, 0, 2013)  # OP_MSG
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(header + body)
        length, _, _, opcode = struct.unpack("<iiii", _recv_exact(sock, 16))
        reply = _recv_exact(sock, length - 16)
    if opcode != 2013 or b"\x01ok\x00" not in reply:
        raise ConnectionError(f"{host}:{port} does not speak the MongoDB wire protocol")
    ok_at = reply.index(b"\x01ok\x00") + 4
    (ok,) = struct.unpack("<d", reply[ok_at : ok_at + 8])
    if ok != 1.0:
        raise ConnectionError(f"{host}:{port} answered hello with ok={ok}")
    if b"\x08isWritablePrimary\x00\x01" not in reply:
        raise ConnectionError("the server answers but is not (yet) a writable primary")


def main(argv):
    if len(argv) != 3 or argv[1] not in ("amqp", "mgmt", "mongo", "mongo-raw", "hostport"):
        print(__doc__, file=sys.stderr)
        return 2
    kind, target = argv[1], argv[2]
    if kind == "hostport":
        default = 27017 if target.startswith("mongodb") else 5672
        host, port = _hostports(target, default)[0]
        print(host, port)
        return 0
    try:
        probes = {
            "amqp": probe_amqp,
            "mgmt": probe_mgmt,
            "mongo": probe_mongo,
            "mongo-raw": lambda uri: probe_mongo(uri, raw=True),
        }
        probes[kind](target)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        print(f"{kind} probe failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # pymongo errors and anything unexpected: "does not answer"
        print(f"{kind} probe failed: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
