"""A small HTTP service used to test the HTTP kernel (not a product module)."""

import uuid
from datetime import UTC, datetime

from marshmallow import Schema, fields, validate

from pamong.auth import scope_check
from pamong.health import HealthEndpoints
from pamong.storage import Mongo
from pamong.web import (
    PageQuery,
    current_actor,
    current_correlation_id,
    find_page,
    forbidden,
    not_found,
    page_of,
    route,
)
from pamong.web.openapi import spec_for

ROLES = ("admin", "opd_admin")


class ThingSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    opd = fields.String(required=True)
    count = fields.Integer(load_default=0, validate=validate.Range(min=0))


class ThingOutSchema(ThingSchema):
    id = fields.String(attribute="_id")
    created_at = fields.DateTime()
    created_by = fields.Dict()
    correlation_id = fields.String()


class ThingListQuery(PageQuery):
    opd = fields.String()


class HttpKernelService(HealthEndpoints):
    name = "httpkernel"
    db = Mongo()

    @route("POST", "/api/things/v1/things", roles=ROLES, body=ThingSchema(),
           response=ThingOutSchema(), status=201, summary="Create a thing", tags=["things"])
    def create_thing(self, request, principal, body):
        if not principal.can_write(body["opd"]):
            raise forbidden("You may not create things for that OPD.")
        thing = {"_id": uuid.uuid4().hex, **body, "created_at": datetime.now(UTC),
                 "created_by": current_actor(), "correlation_id": current_correlation_id()}
        self.db.things.insert_one(thing)
        return thing

    @route("GET", "/api/things/v1/things/<thing_id>", roles=ROLES, response=ThingOutSchema(),
           summary="One thing", tags=["things"])
    def get_thing(self, request, principal, thing_id):
        thing = self.db.things.find_one({"_id": thing_id})
        if thing is None:
            raise not_found()
        scope_check(principal, thing["opd"])
        return thing

    @route("GET", "/api/things/v1/things", roles=ROLES, query=ThingListQuery(),
           response=page_of(ThingOutSchema()), summary="List things", tags=["things"])
    def list_things(self, request, principal, query):
        opd = query.get("opd") or principal.opd
        scope_check(principal, opd)
        return find_page(self.db.things, [{"opd": opd}], query)

    @route("DELETE", "/api/things/v1/things/<thing_id>", roles=("admin",), status=204)
    def delete_thing(self, request, principal, thing_id):
        if self.db.things.delete_one({"_id": thing_id}).deleted_count == 0:
            raise not_found()

    @route("GET", "/api/things/v1/whoami", any_staff=True)
    def whoami(self, request, principal):
        return 200, {"sub": principal.sub, "roles": list(principal.roles)}, {"X-Whoami": "1"}

    @route("GET", "/api/things/v1/boom", public=True)
    def boom(self, request, principal):
        raise RuntimeError("secret internal detail: mongodb://user:pw@db")

    @route("GET", "/api/things/v1/openapi.json", public=True, document=False)
    def openapi(self, request, principal):
        return spec_for(type(self), "httpkernel", "1.0.0")
