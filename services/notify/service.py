"""The notify service: entrypoints only. Each concern is a mixin in its own module; this
class puts them together, with one event handler per event type the rules use."""

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider

from pamong.cache import TimedCache
from pamong.contracts import notify as contracts  # noqa: F401 - registers the contracts
from pamong.events.outbox import Outbox
from pamong.health import HealthEndpoints
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo
from pamong.web.openapi import openapi_endpoint
from services.notify import rules
from services.notify.admin import AdminEndpoints
from services.notify.desk import ServiceDesk
from services.notify.inbox import InboxEndpoints
from services.notify.intake import PreviewEndpoints, RuleIntake
from services.notify.pending import PendingTimers
from services.notify.preferences import PreferenceEndpoints
from services.notify.sending import Dispatcher
from services.notify.store import INDEXES
from services.notify.webhooks import WebhookEndpoints


class CacheProvider(DependencyProvider):
    """One cache of replica reads (recipients' units, time zones) per process."""

    def setup(self):
        self.cache = TimedCache(float(self.container.config.get(
            "NOTIFY_REFERENCE_CACHE_SECONDS", 5)))

    def get_dependency(self, worker_ctx):
        return self.cache


def build_service(rules_file=None, templates_dir=None):
    """The service class with one handler per event type the rules use. Rules that do not
    validate (an unknown event type, template or placeholder) stop the start with the
    reason (``SystemExit``)."""
    try:
        loaded = rules.load(rules_file, templates_dir)
    except rules.RulesError as exc:
        raise SystemExit(f"notify: the notification rules do not validate: {exc}") from exc
    handlers = rules.handler_methods(loaded)

    class NotifyService(Dispatcher, PendingTimers, RuleIntake, PreviewEndpoints,
                        WebhookEndpoints, ServiceDesk, InboxEndpoints, PreferenceEndpoints,
                        AdminEndpoints, DirectoryReplica,
                        HealthEndpoints, openapi_endpoint("notify")):
        name = "notify"
        db = Mongo(indexes=REPLICA_INDEXES + INDEXES)
        outbox = Outbox()
        config = Config()
        cache = CacheProvider()

    for method_name, function in handlers.items():
        setattr(NotifyService, method_name, function)
    return NotifyService


SERVICE = build_service()
