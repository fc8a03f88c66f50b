"""``pamong``: the operator's and developer's command line."""
# eventlet must patch the standard library before nameko, kombu or pymongo are imported
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from pamong.config import load_config  # noqa: E402
from pamong.modules import installed, load_service  # noqa: E402


def _services(args):
    if args.service:
        return [load_service(spec) for spec in args.service]
    return list(installed().values())


def _handler_queues(args):
    from pamong.events.topology import bindings_of

    queues = [b.queue for cls in _services(args) for b in bindings_of(cls)]
    if getattr(args, "queue", None):
        if args.queue not in queues and not args.service:
            raise SystemExit(f"unknown handler queue {args.queue!r}")
        return [args.queue]
    return queues


def cmd_token(args, config):
    from pamong.auth import mint_token

    print(mint_token(config, sub=args.sub, roles=args.role, opd=args.opd, name=args.name,
                     nip=args.nip, nik=args.nik, ttl_seconds=args.ttl))


def cmd_bus_declare(args, config):
    from kombu import Connection

    from pamong.events.topology import QueueOptions, declare_service

    retry_steps = len(config["RETRY_DELAYS"])
    options = QueueOptions.from_config(config)
    with Connection(config["AMQP_URI"]) as connection:
        for service_cls in _services(args):
            for binding in declare_service(connection, service_cls, retry_steps, options):
                print(f"{binding.queue} <- {binding.source}.events [{binding.event_type}]")
            print(f"{service_cls.name}.events declared ({options.type} queues)")


def _orphan_notes(found, config):
    hours = config.get("UNROUTABLE_RETENTION_HOURS")
    kept = f" (kept {float(hours):g} h for a replay)" if hours else ""
    for source, event_type in sorted(found.orphaned or ()):
        print(f"note: {found.module} was the only subscriber to {event_type} (from {source}): "
              f"while {source} runs, those events are parked in {source}.unroutable{kept}")


def cmd_bus_retire(args, config):
    """Exit 0: retired, or nothing left to retire; 1: refused (nothing deleted; the message
    names the flag that overrides it); 2: the broker could not be looked at. ``--dry-run``
    exits with what the real run would."""
    from pamong.events import retire

    module = args.module
    try:
        found = retire.plan(config["AMQP_URI"], module, config, len(config["RETRY_DELAYS"]))
    except retire.RetireError as exc:
        print(f"pamong bus retire: {exc}", file=sys.stderr)
        return 2
    exchange = args.exchange and found.exchange_exists
    if not found.queues and not exchange:
        print(f"nothing to retire: no queue of {module} on vhost {found.vhost!r} "
              f"(looked on {found.listed_by})"
              + (f"; {found.exchange} kept" if found.exchange_exists else ""))
        return 0
    print(f"{module} on vhost {found.vhost!r} (queues found on {found.listed_by}):")
    table = retire.rows(found)
    width = max((len(row[0]) for row in table), default=5)
    if table:
        print(f"  {'queue':<{width}}  waiting  parked  consumers")
    for name, waiting, parked, consumers, also in table:
        print(f"  {name:<{width}}  {waiting:>7}  {parked:>6}  {consumers:>9}"
              + (f"  (+ {also})" if also else ""))
    if found.exchange_exists:
        bound = ("bindings unknown (no management API)" if found.exchange_bound is None
                 else f"{len(found.exchange_bound)} queue(s) of other modules bound")
        print(f"  exchange {found.exchange}: {bound}; "
              + ("deleted only if unused" if args.exchange else "kept (--exchange deletes it)"))
    adopted = [m.strip() for m in os.environ.get("PAMONG_MODULES", "").split(",")]
    if module in adopted:
        print(f"warning: PAMONG_MODULES still names {module}: take it out, or the next "
              "`pamong bus declare` declares its queues again", file=sys.stderr)
    problems = retire.refusals(found, args.force, args.drop_parked, args.exchange)
    for problem in problems:
        print(f"REFUSED: {problem}", file=sys.stderr)
    if problems:
        print("nothing deleted" + (" (dry run)" if args.dry_run else ""), file=sys.stderr)
        return 1
    waiting = found.waiting
    parked = sum(q.messages for q in found.parked)
    summary = (f"{len(found.queues)} queue(s), {waiting} event(s) still waiting for {module} "
               f"and {parked} parked message(s)")
    if args.dry_run:
        print(f"dry run: would delete {summary}" + (f" and {found.exchange}" if exchange
                                                    else ""))
        _orphan_notes(found, config)
        return 0
    deleted, exchange_deleted = retire.execute(config["AMQP_URI"], found, args.exchange)
    if len(deleted) != len(found.queues):  # another operator was quicker: say what we did
        summary = f"{len(deleted)} of the {summary}"
    print(f"retired {module}: deleted {summary}"
          + (f"; deleted {found.exchange}" if exchange_deleted else ""))
    _orphan_notes(found, config)
    if exchange and not exchange_deleted:
        print(f"REFUSED: {found.exchange} kept: a queue is bound to it (its queues are "
              "deleted)", file=sys.stderr)
        return 1
    return 0


def cmd_dlq(args, config):
    from pamong.events import dlq

    uri = config["AMQP_URI"]
    if args.action == "list":
        services = [] if args.queue else [cls.name for cls in _services(args)]
        for name, count in dlq.list_dlqs(uri, _handler_queues(args), services):
            print(f"{name}\t{'not declared' if count is None else count}")
        return
    if not args.queue:
        raise SystemExit(f"dlq {args.action} needs a handler queue name (see: pamong dlq list)")
    if args.action == "show":
        for item in dlq.show(uri, args.queue, args.limit):
            print(json.dumps(item, default=str, ensure_ascii=False))
    elif args.action == "replay":
        replayed, refused = dlq.replay(uri, args.queue, args.id)
        for event_id in replayed:
            print(f"replayed {event_id}")
        for event_id in refused:
            print(f"not replayed (no queue took it, still parked): {event_id}")
        print(f"replayed {len(replayed)} message(s) from {dlq.parked_queue(args.queue)}")
        return 1 if refused else 0
    elif args.action == "purge":
        print(f"purged {dlq.purge(uri, args.queue)} message(s) from "
              f"{dlq.parked_queue(args.queue)}")


def cmd_events_tail(args, config):
    from pamong.events.tail import tail

    sources = args.source or [cls.name for cls in _services(args)]
    if not sources:
        raise SystemExit("no sources: pass --source NAME or install a module")
    for line in tail(config["AMQP_URI"], sources, args.count):
        print(line, flush=True)


def cmd_contracts(args, config):
    from pamong.events import compat

    if args.action == "lock":
        compat.lock()
        print(f"recorded {len(compat.current_shapes())} contract(s) in {compat.LOCK_FILE}")
        return 0
    problems = compat.check()
    for problem in problems:
        print(f"BREAKING: {problem}")
    print("contracts compatible" if not problems else f"{len(problems)} breaking change(s)")
    return 1 if problems else 0


def cmd_docs(args, config):
    from pathlib import Path

    from pamong.events.asyncapi import build

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "asyncapi.json").write_text(json.dumps(build(), indent=2, sort_keys=True) + "\n")
    written = ["asyncapi.json"]
    try:
        from pamong.web.openapi import spec_for
    except ImportError:  # pragma: no cover - the web kernel is part of the distribution
        spec_for = None
    for name, service_cls in installed().items():
        if spec_for is not None:
            spec = spec_for(service_cls, title=f"pamong {name}", version="1")
            (out / f"openapi-{name}.json").write_text(json.dumps(spec, indent=2) + "\n")
            written.append(f"openapi-{name}.json")
    print("wrote " + ", ".join(str(out / name) for name in written))


def cmd_serve(args, config):
    import os

    from pamong import logs
    from pamong.launcher import serve

    # the container image runs `pamong serve` with PAMONG_MODULE (and PAMONG_PORT) set
    module = args.module or os.environ.get("PAMONG_MODULE", "").strip()
    if not module:
        raise SystemExit("pamong serve: name a module (pamong serve letters) or set "
                         "PAMONG_MODULE")
    port = args.port or int(os.environ.get("PAMONG_PORT") or 0) or None
    logs.configure(module)  # JSON from the first line, importing the module included
    serve(load_service(module), config, port=port)


def cmd_run(args, config):
    from pamong.launcher import run_all

    if args.demo:
        # the demo's people sign in on /masuk without an identity provider (never with JWKS:
        # the services refuse to start then)
        os.environ.setdefault("PAGES_DEV_SIGNIN", "true")
        os.environ.setdefault("PAGES_SITE_NAME", "Pemkab Banyuwangi (demo)")
    return run_all(args.module or list(installed()), first_port=args.first_port,
                   demo_config=config if args.demo else None)


def cmd_directory_snapshot(args, config):
    import getpass

    from pamong.replica import request_snapshot

    event_id = request_snapshot(config["AMQP_URI"], f"cli:{getpass.getuser()}")
    print(f"directory.snapshot_requested published (event {event_id}): the directory re-emits "
          "every unit, employee and acting assignment")


def cmd_permits_rebuild_stats(args, config):
    from pamong.cache import TimedCache
    from pamong.storage import client_for, database_name
    from services.permits.dashboard import rebuild

    db = client_for(config["MONGO_URI"], config)[database_name(config, "permits")]
    written = rebuild(db, config, TimedCache(0))
    print(f"permits: {written} stats document(s) recomputed from the applications")


def cmd_permits_rebuild_lists(args, config):
    from pamong.storage import client_for, database_name
    from services.permits.applications import QUEUED
    from services.permits.chunks import rebuild_lists

    db = client_for(config["MONGO_URI"], config)[database_name(config, "permits")]
    owners, queues = rebuild_lists(db, QUEUED)
    print(f"permits: {owners} owners' and {queues} work list document(s) rewritten from the "
          "applications")


def build_parser():
    parser = argparse.ArgumentParser(prog="pamong", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: $PAMONG_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    token = commands.add_parser("token", help="mint a development JWT (HS256, JWT_SECRET)")
    token.add_argument("--sub", required=True)
    token.add_argument("--role", action="append", required=True, help="repeat for more roles")
    token.add_argument("--opd", help="unit code the caller belongs to")
    token.add_argument("--name")
    token.add_argument("--nip")
    token.add_argument("--nik")
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.set_defaults(func=cmd_token)

    service_opt = argparse.ArgumentParser(add_help=False)
    service_opt.add_argument("--service", action="append",
                             help="service class as module:Class (default: installed modules)")

    bus = commands.add_parser("bus", help="message bus topology")
    bus_commands = bus.add_subparsers(dest="bus_command", required=True)
    declare = bus_commands.add_parser("declare", parents=[service_opt],
                                      help="declare exchanges, queues, delay queues and DLQs")
    declare.set_defaults(func=cmd_bus_declare)
    retire = bus_commands.add_parser(
        "retire", help="delete the queues of a module that no longer runs (it may be "
        "uninstalled already); refuses while it has consumers or parked messages",
        description="Delete <module>.* (handler, delay and dead-letter queues, "
        "<module>.unroutable) and rpc-<module>. Exit 0: done or nothing to do; 1: refused, "
        "nothing deleted; 2: the broker could not be looked at.")
    retire.add_argument("module", help="module name, e.g. attendance")
    retire.add_argument("--dry-run", action="store_true",
                        help="list what would be deleted, with message counts; delete nothing")
    retire.add_argument("--force", action="store_true",
                        help="delete even while consumers are attached (a replica you cannot "
                        "stop)")
    retire.add_argument("--drop-parked", action="store_true",
                        help="delete even when its DLQs or unroutable queue hold messages")
    retire.add_argument("--exchange", action="store_true",
                        help="also delete <module>.events, only when no other module's queue "
                        "is bound to it")
    retire.set_defaults(func=cmd_bus_retire)

    dlq = commands.add_parser("dlq", parents=[service_opt],
                              help="dead-letter queues and unroutable events")
    dlq.add_argument("action", choices=["list", "show", "replay", "purge"])
    dlq.add_argument("queue", nargs="?", help="handler queue, e.g. letters.on_employee_upserted, "
                     "or <service>.unroutable")
    dlq.add_argument("--id", help="replay only the message with this event id")
    dlq.add_argument("--limit", type=int, default=20, help="show at most this many")
    dlq.set_defaults(func=cmd_dlq)

    events = commands.add_parser("events", help="watch the bus")
    event_commands = events.add_subparsers(dest="events_command", required=True)
    tail = event_commands.add_parser("tail", parents=[service_opt],
                                     help="print every event published (debugging)")
    tail.add_argument("--source", action="append", help="publishing service (repeatable)")
    tail.add_argument("--count", type=int, help="stop after this many events")
    tail.set_defaults(func=cmd_events_tail, runs_until_stopped=True)

    contracts_cmd = commands.add_parser("contracts", help="event contract compatibility")
    contracts_cmd.add_argument("action", choices=["check", "lock"])
    contracts_cmd.set_defaults(func=cmd_contracts)

    docs = commands.add_parser("docs", help="write OpenAPI and AsyncAPI documents")
    docs.add_argument("--out", default="docs")
    docs.set_defaults(func=cmd_docs)

    directory = commands.add_parser("directory", help="the directory module")
    directory_commands = directory.add_subparsers(dest="directory_command", required=True)
    snapshot = directory_commands.add_parser(
        "snapshot", help="ask the directory to re-emit its state (replicas catch up)")
    snapshot.set_defaults(func=cmd_directory_snapshot)

    permits = commands.add_parser("permits", help="the permits module")
    permits_commands = permits.add_subparsers(dest="permits_command", required=True)
    rebuild = permits_commands.add_parser(
        "rebuild-stats", help="recompute the dashboard's aggregates from the applications "
        "(a scan: stop the permits service and let its queues drain first)")
    rebuild.set_defaults(func=cmd_permits_rebuild_stats)
    relist = permits_commands.add_parser(
        "rebuild-lists", help="rewrite the owners' and work lists from the applications in "
        "chunks of bounded size (once after upgrading; a scan: stop the permits service and "
        "let its queues drain first)")
    relist.set_defaults(func=cmd_permits_rebuild_lists)

    serve = commands.add_parser("serve", help="run one service in this process")
    serve.add_argument("module", nargs="?",
                       help="installed module name or module:Class (default: $PAMONG_MODULE)")
    serve.add_argument("--port", type=int,
                       help="HTTP port (default: $PAMONG_PORT, else WEB_SERVER_ADDRESS)")
    serve.set_defaults(func=cmd_serve, runs_until_stopped=True)

    run = commands.add_parser("run", help="run every installed module, one process each")
    run.add_argument("module", nargs="*")
    run.add_argument("--first-port", type=int, default=8001)
    run.add_argument("--demo", action="store_true",
                     help="load each module's demo data once it answers (services/*/seed.py)")
    run.set_defaults(func=cmd_run, runs_until_stopped=True)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args.config)
    try:
        return args.func(args, config) or 0
    except KeyboardInterrupt:
        if getattr(args, "runs_until_stopped", False):
            return 0  # Ctrl-C is how these end (even while they start): a requested stop
        raise


if __name__ == "__main__":
    sys.exit(main())
