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


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    from nameko.standalone.rpc import ClusterRpcProxy

    return ClusterRpcProxy(config, timeout=30)


def publish_raw(config, source, event_type, body, content_type="application/json"):
    """Publish ``body`` (dict -> JSON, or bytes as they are) to ``<source>.events``."""
    import json

    from kombu import Connection

    from pamong.events.topology import event_exchange

    payload = json.dumps(body) if isinstance(body, dict) else body
    with Connection(config["AMQP_URI"], transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        exchange = event_exchange(source)
        producer.publish(payload, exchange=exchange, routing_key=event_type, declare=[exchange],
                         content_type=content_type, content_encoding="utf-8",
                         delivery_mode=2, mandatory=True)
