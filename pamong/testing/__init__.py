"""Helpers for tests against the real broker and database."""

import time


class ConditionTimeout(AssertionError):
    pass


def wait_until(condition, timeout=10.0, interval=0.02, message="condition"):
    """Poll ``condition`` until it returns a truthy value; return that value.

    Raise ConditionTimeout (an AssertionError) naming ``message`` and the last value seen.
    Under eventlet, ``time.sleep`` is green, so services in the same process keep running.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise ConditionTimeout(f"{message} not met within {timeout}s (last value: {last!r})")
        time.sleep(interval)


def race(workers, task):
    """Run ``task(worker)`` for every worker at the same moment (green threads released by one
    gate, so they reach the server together rather than in spawn order); the results in order.
    """
    import eventlet
    from eventlet.event import Event

    gate = Event()
    pool = eventlet.GreenPool(len(workers))

    def gated(worker):
        gate.wait()
        return task(worker)

    threads = [pool.spawn(gated, worker) for worker in workers]
    eventlet.sleep(0)
    gate.send()
    return [thread.wait() for thread in threads]


_HANDED_OUT = set()  # ports free_port() gave this process
# the local stack's fixed ports in the range free_port() draws from (RabbitMQ's distribution
# port, the database): a test must not take them while that server is down for a while
_RESERVED = {25672, 27017}
_RANGE_WIDTH = 10000


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this process was
    not given before: a service's server binds with SO_REUSEPORT (eventlet's default), so two
    services given one port would both listen on it and share its requests without an error
    (seen in the chaos day: a letters request answered 404 by notify).

    It is drawn from just below the kernel's ephemeral range (``ip_local_port_range``), never
    from it: a server stopped and started again on its port (a module, the broker or the
    database in a crash test) would otherwise find it taken meanwhile as the local end of
    some outgoing connection, and fail to bind."""
    import random
    import socket

    low = _ephemeral_low()
    draw = random.SystemRandom()
    while True:
        port = draw.randrange(max(1024, low - _RANGE_WIDTH), low)
        if port in _HANDED_OUT or port in _RESERVED:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use
                continue
        _HANDED_OUT.add(port)
        return port


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as file:
            return int(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def serve_process(config, module, port, ready_path="/health/ready", log=None,
                  ready_timeout=30, **env):
    """``pamong serve <module>`` in a child process (a real crash can be a SIGKILL), with
    ``config``'s broker, database and secret plus ``env``; returns the Popen once
    ``ready_path`` answers 200. Its stderr (the JSON log) goes to the open file ``log``, or
    nowhere."""
    import os
    import subprocess
    import sys

    import requests

    settings = {key: str(config[key]) for key in ("AMQP_URI", "MONGO_URI", "MONGO_DB_PREFIX",
                                                  "JWT_SECRET") if config.get(key)}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "pamong.cli.main", "serve", module, "--port", str(port)],
        env={**os.environ, **settings, **{k: str(v) for k, v in env.items()}},
        stderr=log or subprocess.DEVNULL)

    def up():
        if process.poll() is not None:
            raise RuntimeError(f"{module} exited with {process.returncode} while starting"
                               + _log_tail(log))
        try:
            return requests.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).ok
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=ready_timeout, message=f"{module} answering on {ready_path}")
    return process


def _log_tail(log, lines=15):
    """The last ``lines`` of a child's log file, so a crash at start-up says why."""
    name = getattr(log, "name", None)
    if not isinstance(name, str):
        return ""
    log.flush()
    with open(name, "rb") as file:
        file.seek(max(0, file.seek(0, 2) - 16384))
        tail = file.read().decode("utf-8", "replace").splitlines()[-lines:]
    return ":\n" + "\n".join(tail)


def drop_databases(config):
    """Drop every database of ``config``'s ``MONGO_DB_PREFIX`` (a test's or a bench run's)."""
    import pymongo

    client = pymongo.MongoClient(config["MONGO_URI"], serverSelectionTimeoutMS=3000)
    try:
        for name in client.list_database_names():
            if name.startswith(config["MONGO_DB_PREFIX"]):
                client.drop_database(name)
    finally:
        client.close()


class HttpClient:
    """``requests`` against one running service, with token helpers."""

    def __init__(self, base_url, config):
        import requests

        self.base_url = base_url
        self.config = config
        self.session = requests.Session()

    def token(self, roles=("opd_admin",), opd="3510.01", sub="u1", **kwargs):
        from pamong.auth import mint_token

        return mint_token(self.config, sub, roles, opd=opd, **kwargs)

    def request(self, method, path, token=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.base_url + path, headers=headers, **kwargs)

    def as_staff(self, method, path, roles=("opd_admin",), opd="3510.01", **kwargs):
        return self.request(method, path, token=self.token(roles, opd), **kwargs)


class EventRecorder:
    """Every event ``source`` publishes from now on, kept in a queue of its own.

    ``events()`` returns the envelopes received so far (in arrival order, accumulated across
    calls); ``of(type)`` filters them. The queue is durable, so it survives a publisher crash.
    """

    def __init__(self, config, source):
        import uuid

        from kombu import Connection, Queue

        from pamong.events.topology import event_exchange

        self.connection = Connection(config["AMQP_URI"])
        self.channel = self.connection.channel()
        exchange = event_exchange(source)(self.channel)
        exchange.declare()
        self.queue = Queue(f"test.recorder.{uuid.uuid4().hex[:8]}", exchange=exchange,
                           routing_key="#", durable=True, auto_delete=False)(self.channel)
        self.queue.declare()
        self.received = []

    def events(self):
        import json

        while (message := self.queue.get(no_ack=True)) is not None:
            self.received.append(json.loads(message.body))
        return list(self.received)

    def of(self, event_type):
        return [e for e in self.events() if e["type"] == event_type]

    def close(self):
        self.queue.delete()
        self.connection.release()


class running:
    """``with running(config, ServiceA, ServiceB) as runner:`` real nameko containers."""

    def __init__(self, config, *service_classes):
        from nameko.runners import ServiceRunner

        self.runner = ServiceRunner(config)
        for cls in service_classes:
            self.runner.add_service(cls)

    def __enter__(self):
        self.runner.start()
        return self.runner

    def __exit__(self, *exc):
        self.runner.stop()
        return False


def rpc_proxy(config):
    """A context manager giving ``proxy.<service>.<method>(...)`` over the real broker."""
    from pamong.rpc import RpcClient

    return RpcClient(config, timeout=30)


def publish_raw(config, source, event_type, body, content_type="application/json"):
    """Publish ``body`` (dict -> JSON, or bytes as they are) to ``<source>.events``."""
    import json

    from kombu import Connection

    from pamong.events.topology import CONFIRM_TIMEOUT, event_exchange

    payload = json.dumps(body) if isinstance(body, dict) else body
    with Connection(config["AMQP_URI"], transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        exchange = event_exchange(source)
        producer.publish(payload, exchange=exchange, routing_key=event_type, declare=[exchange],
                         content_type=content_type, content_encoding="utf-8",
                         delivery_mode=2, mandatory=True, confirm_timeout=CONFIRM_TIMEOUT)


def done_marks(db):
    """How many events the consumers of database ``db`` have marked handled (every day
    bucket of their inbox)."""
    from pamong.events.consumer import INBOX_BUCKET

    return sum(db[name].count_documents({"at": {"$exists": True}})
               for name in db.list_collection_names() if name.startswith(INBOX_BUCKET))
