"""The ``Idempotency-Key`` header of POST endpoints that clients retry (DESIGN §6): a repeat
with the same key returns the first result."""

import re

from pamong.web.problem import bad_request

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
_SHAPE = "8-128 of [A-Za-z0-9_.:-]"


def idempotency_key(request, required=False):
    """The request's key, checked; None when it sends none and the endpoint does not require
    one (400 when it does, or when the key is malformed)."""
    key = request.headers.get("Idempotency-Key")
    if key is None and not required:
        return None
    if not key or not IDEMPOTENCY_KEY.match(key):
        detail = ("Send an Idempotency-Key header, new for each request and the same on "
                  "every retry of it" if required else "An Idempotency-Key is malformed")
        raise bad_request(f"{detail}: {_SHAPE}.",
                          errors={"Idempotency-Key": [("required, " if required else "")
                                                      + _SHAPE]})
    return key
