"""The permits service: entrypoints only. Each concern is a mixin in its own module (rules in
``domain``, storage in ``store``); this class puts them together."""

from nameko.dependency_providers import Config
from nameko.extensions import DependencyProvider

from pamong.cache import TimedCache
from pamong.events.outbox import Outbox
from pamong.health import HealthEndpoints
from pamong.replica import REPLICA_INDEXES, DirectoryReplica
from pamong.storage import Mongo
from pamong.web.openapi import openapi_endpoint
from pamong.web.pages import PageEndpoints
from services.permits.applications import ApplicationEndpoints
from services.permits.dashboard import DashboardEndpoints
from services.permits.lifecycle import LifecycleEndpoints
from services.permits.pages import PermitPages
from services.permits.presence import PresenceReadModel
from services.permits.public import PublicEndpoints
from services.permits.sla import SlaTimers
from services.permits.store import INDEXES
from services.permits.survey import SurveyEndpoints
from services.permits.types import TypeEndpoints


class CacheProvider(DependencyProvider):
    """One cache of reference data (holidays, types, units) per process."""

    def setup(self):
        self.cache = TimedCache(float(self.container.config.get(
            "PERMITS_REFERENCE_CACHE_SECONDS", 5)))

    def get_dependency(self, worker_ctx):
        return self.cache


class PermitsService(TypeEndpoints, ApplicationEndpoints, LifecycleEndpoints, PublicEndpoints,
                     SlaTimers, DashboardEndpoints, SurveyEndpoints, PresenceReadModel,
                     PermitPages, PageEndpoints, DirectoryReplica,
                     HealthEndpoints, openapi_endpoint("permits")):
    name = "permits"
    db = Mongo(indexes=REPLICA_INDEXES + INDEXES)
    outbox = Outbox()
    config = Config()
    cache = CacheProvider()


SERVICE = PermitsService
