"""Health and metrics endpoints every service inherits (DESIGN §6, §7).

    class LettersService(HealthEndpoints):
        name = "letters"
        db = Mongo(indexes=...)

adds, all public and left out of the OpenAPI document:

- ``GET /health/live``: 200 while the process serves HTTP;
- ``GET /health/ready``: 200 when the broker (a fresh connection to ``AMQP_URI``) and the
  database (the service's ``Mongo`` provider's ``ping()``) answer, else 503 naming the failing
  part. Both checks run concurrently and each is cut off after ``HEALTH_CHECK_TIMEOUT_SECONDS``
  (default 1.5), so the answer comes within ~2 s even when a server hangs;
- ``GET /metrics``: the process's prometheus metrics, text format.
"""

import logging

import eventlet
import kombu
import pymongo
from nameko.extensions import DependencyProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from werkzeug.wrappers import Response

from pamong.storage import Mongo
from pamong.web import route, service_unavailable

_log = logging.getLogger(__name__)

DEFAULT_CHECK_TIMEOUT = 1.5


class ReadinessChecker:
    def __init__(self, container):
        self.container = container
        self.timeout = float(container.config.get("HEALTH_CHECK_TIMEOUT_SECONDS",
                                                  DEFAULT_CHECK_TIMEOUT))

    def check(self):
        """``{part: reason}`` for every part that is not ready; empty when all are."""
        pool = eventlet.GreenPool()
        threads = {name: pool.spawn(self._run, name, check)
                   for name, check in (("broker", self.check_broker),
                                       ("database", self.check_database))}
        results = {name: thread.wait() for name, thread in threads.items()}
        return {name: reason for name, reason in results.items() if reason}

    def _run(self, name, check):
        backstop = self.timeout + 0.5
        try:
            # for a server that accepts and then hangs (kombu's connect_timeout does not
            # cover the AMQP handshake); the checks' own timeouts fire first when they can
            with eventlet.Timeout(backstop):
                check()
            return None
        except eventlet.Timeout:
            reason = f"no answer within {backstop}s"
        except Exception as exc:
            _log.warning("readiness: %s check failed: %r", name, exc)
            reason = f"unreachable ({type(exc).__name__})"
        _log.warning("readiness: %s is not ready: %s", name, reason)
        return reason

    def check_broker(self):
        with kombu.Connection(self.container.config["AMQP_URI"],
                              connect_timeout=self.timeout) as connection:
            connection.connect()

    def check_database(self):
        mongo = next((dep for dep in self.container.dependencies if isinstance(dep, Mongo)),
                     None)
        if mongo is None:  # a service without a database is ready without one
            return
        # bounds server selection too (else MONGO_SERVER_SELECTION_TIMEOUT_SECONDS)
        with pymongo.timeout(self.timeout):
            mongo.ping()


class Readiness(DependencyProvider):
    """Injects a ``ReadinessChecker`` for the container the worker runs in."""

    def get_dependency(self, worker_ctx):
        return ReadinessChecker(self.container)


class HealthEndpoints:
    readiness = Readiness()

    @route("GET", "/health/live", public=True, document=False)
    def health_live(self, request, principal):
        return {"status": "live"}

    @route("GET", "/health/ready", public=True, document=False)
    def health_ready(self, request, principal):
        failing = self.readiness.check()
        if failing:
            raise service_unavailable(
                "Not ready: " + ", ".join(sorted(failing)) + ".",
                errors={part: [reason] for part, reason in failing.items()})
        return {"status": "ready"}

    @route("GET", "/metrics", public=True, document=False)
    def metrics(self, request, principal):
        return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
