"""A throw-away RabbitMQ vhost through the management HTTP API."""

import os
import uuid
from urllib.parse import quote, urlsplit, urlunsplit

import requests

MANAGEMENT_URL = os.environ.get("RABBIT_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")


def _api(path):
    parts = urlsplit(MANAGEMENT_URL)
    auth = (parts.username or "guest", parts.password or "guest")
    base = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port else ""),
                       "", "", ""))
    return base + "/api" + path, auth


def create_vhost(prefix="pamong-test"):
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    url, auth = _api(f"/vhosts/{quote(name, safe='')}")
    requests.put(url, auth=auth, timeout=10).raise_for_status()
    url, auth = _api(f"/permissions/{quote(name, safe='')}/{auth[0]}")
    requests.put(url, json={"configure": ".*", "write": ".*", "read": ".*"}, auth=auth,
                 timeout=10).raise_for_status()
    return name


def delete_vhost(name):
    url, auth = _api(f"/vhosts/{quote(name, safe='')}")
    requests.delete(url, auth=auth, timeout=10)


def amqp_uri_for(vhost, base_uri=None):
    base = urlsplit(base_uri or os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    return urlunsplit((base.scheme, base.netloc, "/" + quote(vhost, safe=""), "", ""))


def queue_depth(vhost, queue):
    """Messages ready + unacknowledged in ``queue`` (None when it does not exist)."""
    url, auth = _api(f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}")
    response = requests.get(url, auth=auth, timeout=10)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    return response.json().get("messages", 0)


def vhost_messages(vhost):
    """Messages ready + unacknowledged over every queue of ``vhost`` (as of the management
    API's last statistics refresh, every 5 s by default)."""
    url, auth = _api(f"/queues/{quote(vhost, safe='')}?columns=name,messages")
    response = requests.get(url, auth=auth, timeout=10)
    response.raise_for_status()
    return sum(queue.get("messages") or 0 for queue in response.json())


def drop_all_connections(vhost):
    """What a broker restart looks like to a client: every connection closed by the server."""
    from pamong.testing import wait_until

    url, auth = _api("/connections")

    def listed():  # the management API lists new connections a few seconds late
        return [c["name"] for c in requests.get(url, auth=auth, timeout=10).json()
                if c.get("vhost") == vhost]

    names = wait_until(listed, timeout=20, interval=0.5, message="connections listed")
    for name in names:
        url, auth = _api(f"/connections/{quote(name, safe='')}")
        requests.delete(url, auth=auth, timeout=10)
    return len(names)
