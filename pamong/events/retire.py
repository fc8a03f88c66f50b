"""Taking a module off the bus (``pamong bus retire <module>``).

A module that an OPD stops running leaves durable queues behind: its handler queues
``<module>.<handler>`` stay bound to the exchanges it subscribed to and keep collecting every
event, for ever. Retiring deletes what belongs to the module alone:

- its handler queues, their delay queues ``.retry.<n>`` and DLQs ``.dlq``;
- ``<module>.unroutable`` (its own events no queue took) and ``rpc-<module>`` (nameko's RPC
  queue, when the module answered RPC);
- its exchange ``<module>.events`` only when asked (``--exchange``) and only when no queue of
  another module is bound to it: a subscriber (notify binds to ``attendance.events``) declares
  its bindings only when it starts, so deleting the exchange under it would silently cut it
  off from a module adopted again later. An exchange nobody publishes to holds no message,
  so keeping it costs nothing.

The queues are found on the broker (the management API lists ``<module>.*``), so a module
whose code is gone can be retired. When the management API is out of reach (a pod's network
policy lets it reach AMQP only), the module's code, when present, names what its topology
declares, and passive declares find which of those exist.

Safety: nothing is deleted while a queue has consumers (a replica still runs) or while a DLQ
or the unroutable queue holds parked messages, unless the operator says so (``force``,
``drop_parked``). Events still waiting in a handler or delay queue are the retired module's
own work, which nobody will do any more: they go with their queue, and are counted.
"""

import re
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection

from pamong.events.topology import bindings_of, dlq_name, retry_queue_name

MODULE_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RETRY = re.compile(r"\.retry\.\d+$")
HTTP_TIMEOUT = 10


class RetireError(Exception):
    """The broker cannot be looked at (exit 2: nothing was changed)."""


@dataclass
class QueueState:
    name: str
    kind: str  # handler, delay, parked, rpc
    messages: int
    consumers: int


@dataclass
class Plan:
    module: str
    vhost: str
    queues: list = field(default_factory=list)  # [QueueState], in deletion order
    exchange: str = ""
    exchange_exists: bool = False
    # queues of other modules bound to the module's exchange (None: unknown, no management)
    exchange_bound: list | None = None
    # {(source, event type)} that only the module subscribed to: their source parks them in
    # <source>.unroutable from now on (None: unknown)
    orphaned: set | None = None
    listed_by: str = ""  # where the queue names came from

    def of_kind(self, *kinds):
        return [q for q in self.queues if q.kind in kinds]

    @property
    def consumers(self):
        return [q for q in self.queues if q.consumers]

    @property
    def parked(self):
        return [q for q in self.of_kind("parked") if q.messages]

    @property
    def waiting(self):
        return sum(q.messages for q in self.of_kind("handler", "delay", "rpc"))


def kind_of(module, name):
    if name == f"rpc-{module}":
        return "rpc"
    if name == f"{module}.unroutable" or name.endswith(".dlq"):
        return "parked"
    if RETRY.search(name):
        return "delay"
    return "handler"


def redact(url):
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port
                                                             else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def topic_matches(pattern, key):
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more."""
    def match(p, k):
        if not p:
            return not k
        if p[0] == "#":
            return any(match(p[1:], k[i:]) for i in range(len(k) + 1))
        return bool(k) and p[0] in ("*", k[0]) and match(p[1:], k[1:])
    return match(pattern.split("."), key.split("."))


class Management:
    """The few RabbitMQ management API calls retiring needs, on one vhost."""

    def __init__(self, url, vhost):
        parts = urlsplit(url)
        self.auth = (parts.username or "guest", parts.password or "guest")
        self.base = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], "/api", "", ""))
        self.url, self.vhost = redact(url), quote(vhost, safe="")

    def get(self, path, missing=None):
        """The JSON answer (``missing`` on 404)."""
        try:
            response = requests.get(self.base + path, auth=self.auth, timeout=HTTP_TIMEOUT)
            if response.status_code == 404 and missing is not None:
                return missing
            response.raise_for_status()
        except requests.RequestException as exc:
            raise RetireError(f"the RabbitMQ management API at {self.url} did not answer: "
                              f"{exc}") from exc
        return response.json()

    def queue_names(self):
        return [q["name"] for q in self.get(f"/queues/{self.vhost}?columns=name")]

    def bindings_from(self, exchange):
        """``[(queue or exchange, routing key)]`` bound to ``exchange`` ([] when missing)."""
        rows = self.get(f"/exchanges/{self.vhost}/{quote(exchange, safe='')}/bindings/source",
                        missing=[])
        return [(b["destination"], b["routing_key"]) for b in rows]

    def bindings_of_queue(self, queue):
        rows = self.get(f"/queues/{self.vhost}/{quote(queue, safe='')}/bindings", missing=[])
        return [(b["source"], b["routing_key"]) for b in rows if b["source"]]


def management_url(config, amqp_uri):
    """``RABBIT_MANAGEMENT_URL`` (config or environment), else the AMQP host on 15672 with
    the same credentials."""
    import os

    url = os.environ.get("RABBIT_MANAGEMENT_URL") or config.get("RABBIT_MANAGEMENT_URL")
    if url:
        return url
    parts = urlsplit(amqp_uri)
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}@"
    return f"http://{credentials}{parts.hostname or '127.0.0.1'}:15672"


def service_class(module):
    """The module's service class whatever PAMONG_MODULES says, None when its code is gone."""
    from pamong.modules import load_service

    try:
        return load_service(f"services.{module}.service:SERVICE")
    except (SystemExit, Exception):  # noqa: BLE001 - code gone or broken: the broker decides
        return None


def code_queue_names(module, retry_steps):
    """What the module's code declares (``[]`` when its code is not installed any more)."""
    service_cls = service_class(module)
    if service_cls is None:
        return []
    names = [f"{module}.unroutable", f"rpc-{module}"]
    for binding in bindings_of(service_cls):
        names += [binding.queue, dlq_name(binding.queue)]
        # a broker declared with a longer RETRY_DELAYS has more: probing a missing one is cheap
        names += [retry_queue_name(binding.queue, step)
                  for step in range(1, max(retry_steps, 10) + 1)]
    return names


def code_subscriptions(module):
    """``{(source, type): {queue}}`` of every installed module's code but ``module``."""
    from pamong.modules import installed

    found = {}
    for name, service_cls in installed().items():
        if name != module:
            for b in bindings_of(service_cls):
                found.setdefault((b.source, b.event_type), set()).add(b.queue)
    return found


def _probe(connection, names):
    """``{name: (messages, consumers)}`` of the queues that exist (passive declares: exact,
    unlike the management API's sampled counts)."""
    found = {}
    channel = connection.channel()
    try:
        for name in names:
            try:
                _, messages, consumers = channel.queue_declare(name, passive=True)
            except NotFound:
                channel = connection.channel()  # the broker closed the channel
                continue
            found[name] = (messages, consumers)
        return found
    finally:
        channel.close()


def _exchange_exists(connection, exchange):
    channel = connection.channel()
    try:
        channel.exchange_declare(exchange, "topic", passive=True)
        return True
    except NotFound:
        return False
    finally:
        channel.close()


def plan(amqp_uri, module, config, retry_steps):
    """Look (only look) at what retiring ``module`` would delete."""
    if not MODULE_NAME.match(module):
        raise RetireError(f"{module!r} is not a module name (lower case letters, digits, _)")
    prefix = f"{module}."
    management = None
    with Connection(amqp_uri) as connection:
        vhost = connection.virtual_host or "/"
        names, sources, unreachable = [], [], None
        try:
            management = Management(management_url(config, amqp_uri), vhost)
            names = [n for n in management.queue_names()
                     if n.startswith(prefix) or n == f"rpc-{module}"]
            sources.append(f"the broker ({management.url})")
        except RetireError as exc:
            management, unreachable = None, exc
        # the code only when the broker cannot be listed (importing a module is slow)
        from_code = code_queue_names(module, retry_steps) if management is None else []
        if from_code:
            names += [n for n in from_code if n not in names]
            sources.append(f"the topology of services/{module}")
        if not sources:
            raise RetireError(f"cannot find {module}'s queues: {unreachable}, and its code is "
                              "not installed here (set RABBIT_MANAGEMENT_URL to a management "
                              "API that answers)")
        probed = _probe(connection, names)
        result = Plan(module, vhost, exchange=f"{module}.events",
                      listed_by=" and ".join(sources))
        order = {"handler": 0, "rpc": 0, "delay": 1, "parked": 2}  # parked last: kept longest
        for name in sorted(probed, key=lambda n: (order[kind_of(module, n)], n)):
            result.queues.append(QueueState(name, kind_of(module, name), *probed[name]))
        result.exchange_exists = _exchange_exists(connection, result.exchange)
    mine = {q.name for q in result.queues}
    if management is not None:
        if result.exchange_exists:
            result.exchange_bound = sorted({d for d, _ in management.bindings_from(
                result.exchange) if d not in mine})
        result.orphaned = _orphaned_on_broker(management, module, result.of_kind("handler"))
    else:
        result.orphaned = _orphaned_in_code(module, from_code)
    return result


def _orphaned_on_broker(management, module, handler_queues):
    subscribed = {(source, key) for q in handler_queues
                  for source, key in management.bindings_of_queue(q.name) if source
                  != f"{module}.events"}
    mine = {q.name for q in handler_queues}
    orphaned = set()
    for source in {s for s, _ in subscribed}:
        others = [key for dest, key in management.bindings_from(source) if dest not in mine]
        orphaned |= {(source.removesuffix(".events"), key) for s, key in subscribed
                     if s == source and not any(topic_matches(o, key) for o in others)}
    return orphaned


def _orphaned_in_code(module, from_code):
    service_cls = service_class(module) if from_code else None
    if service_cls is None:
        return None
    others = code_subscriptions(module)
    return {(b.source, b.event_type) for b in bindings_of(service_cls)
            if b.source != module and not others.get((b.source, b.event_type))}


def rows(found):
    """One line per handler queue (its delay queues and DLQ folded in), then the others:
    ``[(name, waiting, parked, consumers, also)]``, ``also`` naming the folded queues."""
    groups = {}
    for q in found.queues:
        base = q.name
        if q.kind == "delay":
            base = RETRY.sub("", q.name)
        elif q.kind == "parked" and q.name.endswith(".dlq"):
            base = q.name.removesuffix(".dlq")
        groups.setdefault(base, []).append(q)
    result = []
    for base, queues in groups.items():
        waiting = sum(q.messages for q in queues if q.kind != "parked")
        parked = sum(q.messages for q in queues if q.kind == "parked")
        delays = sum(q.kind == "delay" for q in queues)
        also = [f"{delays} delay queue(s)"] if delays else []
        also += ["dlq"] if any(q.name == f"{base}.dlq" for q in queues) else []
        result.append((base, waiting, parked, sum(q.consumers for q in queues),
                       ", ".join(also)))
    return result


def refusals(found, force=False, drop_parked=False, exchange=False):
    """Why retiring must not go ahead (each line names the override), ``[]`` when it may."""
    problems = []
    if found.consumers and not force:
        listed = ", ".join(f"{q.name} ({q.consumers})" for q in found.consumers)
        problems.append(
            f"{found.module} is still running: {sum(q.consumers for q in found.consumers)} "
            f"consumer(s) on its queues: {listed}. Stop every {found.module} process first "
            f"(take it out of PAMONG_MODULES / the overlay); --force deletes the queues from "
            "under a consumer you cannot stop (a running replica may declare them again)")
    if found.parked and not drop_parked:
        count = sum(q.messages for q in found.parked)
        listed = ", ".join(f"{q.name} ({q.messages})" for q in found.parked)
        saves = "; ".join(f"pamong dlq show {q.name.removesuffix('.dlq')} --limit "
                          f"{q.messages} >> {found.module}-parked.jsonl" for q in found.parked)
        problems.append(
            f"{count} parked message(s) would be lost: {listed}. Look at them and keep a copy "
            f"({saves}), then run again with --drop-parked")
    if exchange and found.exchange_bound:
        problems.append(
            f"{found.exchange} still routes to {len(found.exchange_bound)} queue(s) of other "
            f"modules: {', '.join(found.exchange_bound)}. They subscribe to {found.module}'s "
            "events and bind again only when they restart; deleting the exchange would cut "
            "them off from a module adopted again. Leave out --exchange (an exchange nobody "
            "publishes to holds nothing), or retire those subscribers first")
    return problems


def execute(amqp_uri, found, exchange=False):
    """Delete the planned queues (and the exchange when asked and unused); returns
    ``(deleted queue names, whether the exchange was deleted)``."""
    deleted = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for queue in found.queues:
            try:
                channel.queue_delete(queue.name)
            except NotFound:  # gone meanwhile (another operator): what we wanted
                channel = connection.channel()
                continue
            deleted.append(queue.name)
        exchange_deleted = False
        if exchange and found.exchange_exists:
            try:  # if_unused: a binding made since the plan still stops it
                channel.exchange_delete(found.exchange, if_unused=True)
                exchange_deleted = True
            except (PreconditionFailed, NotFound):
                channel = connection.channel()
        channel.close()
    return deleted, exchange_deleted
