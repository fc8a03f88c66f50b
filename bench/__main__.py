"""``python -m bench [--events N] [--rounds R] [--employees N] [--edits E] [--clients C]
[--ops N] [--checkins N] [--peak-clients C] [--past P] [--letters N] [--archive N] [--permits N]
[--permits-small N] [--permit-submissions S] [--permit-clients C] [--notifications N]
[--page-requests R] [--morning-employees N] [--morning-clients C] [--morning-seconds S]
[--only SCENARIO] [--profile] [--no-write]``.

Scenarios: event_pipeline (--events, --rounds, --profile), directory (--employees, --edits,
--clients), database (--ops), sweep, attendance (--checkins, --peak-clients, --past),
letters (--letters, --archive), permits (--permits, --permits-small, --permit-submissions,
--permit-clients), notify (--notifications), pages (--page-requests), morning (--morning-employees,
--morning-clients, --morning-seconds).
"""
# eventlet must patch the standard library before nameko, kombu or pymongo are imported
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

SCENARIOS = ("event_pipeline", "directory", "database", "sweep", "attendance", "letters",
             "permits", "notify", "pages", "morning")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=20000,
                        help="events per row and pass (default 20000)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="event_pipeline passes over its rows, every other one reversed "
                             "(default 2: a b c c b a)")
    parser.add_argument("--employees", type=int, default=20000,
                        help="employees imported by the directory scenario (default 20000)")
    parser.add_argument("--edits", type=int, default=200,
                        help="single-employee PUTs per row and client in the directory "
                             "scenario (default 200)")
    parser.add_argument("--clients", type=int, default=10,
                        help="concurrent clients of the directory scenario's edit row "
                             "(default 10)")
    parser.add_argument("--ops", type=int, default=500,
                        help="operations per client and row in the database scenario "
                             "(default 500, 16 clients)")
    parser.add_argument("--checkins", type=int, default=5000,
                        help="employees checking in at the attendance scenario's peak "
                             "(default 5000)")
    parser.add_argument("--peak-clients", type=int, default=200,
                        help="concurrent clients of the attendance peak (default 200)")
    parser.add_argument("--past", type=int,
                        default=int(os.environ.get("BENCH_ATTENDANCE_PAST", 1_000_000)),
                        help="past day records stored before the attendance scenario's loaded "
                             "peak (default 1000000, or $BENCH_ATTENDANCE_PAST)")
    parser.add_argument("--letters", type=int, default=1000,
                        help="letters signed by 50 concurrent signers in the letters "
                             "scenario (default 1000)")
    parser.add_argument("--archive", type=int, default=100_000,
                        help="letters stored for the letters scenario's large inbox and search "
                             "rows (default 100000; the small rows have 1000)")
    parser.add_argument("--permits", type=int, default=100_000,
                        help="applications stored for the permits scenario's dashboard and "
                             "large submission rows (default 100000)")
    parser.add_argument("--permits-small", type=int, default=1000,
                        help="applications stored for the permits scenario's small "
                             "submission rows (default 1000)")
    parser.add_argument("--permit-submissions", type=int, default=2000,
                        help="applications created and submitted per size in the permits "
                             "scenario (default 2000)")
    parser.add_argument("--permit-clients", type=int, default=100,
                        help="concurrent clients of the permits submissions (default 100)")
    parser.add_argument("--notifications", type=int, default=10_000,
                        help="events (one WhatsApp notification each) per row of the notify "
                             "scenario (default 10000)")
    parser.add_argument("--page-requests", type=int, default=200,
                        help="requests of each page and of its JSON API in the pages "
                             "scenario's render rows (default 200)")
    parser.add_argument("--morning-employees", type=int, default=10_000,
                        help="employees imported for the morning scenario, each checking in "
                             "once during its peak (default 10000)")
    parser.add_argument("--morning-clients", type=int, default=100,
                        help="concurrent check-in clients of the morning peak (default 100)")
    parser.add_argument("--morning-seconds", type=int, default=60,
                        help="length of the morning peak, every module at once (default 60)")
    parser.add_argument("--only", choices=SCENARIOS, action="append",
                        help="run only this scenario (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="count database round trips per row (adds a little overhead)")
    parser.add_argument("--no-write", action="store_true",
                        help="print only; do not rewrite bench/results and bench/RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    ok = True
    for name in args.only or SCENARIOS:
        if name == "event_pipeline":
            from bench import event_pipeline

            ok = event_pipeline.run(args.events, profile=args.profile,
                                    write=not args.no_write, rounds=args.rounds) and ok
        elif name == "directory":
            from bench import directory

            ok = directory.run(args.employees, edits=args.edits, clients=args.clients,
                               write=not args.no_write) and ok
        elif name == "database":
            from bench import database

            ok = database.run(args.ops, write=not args.no_write) and ok
        elif name == "sweep":
            from bench import sweep

            ok = sweep.run(write=not args.no_write) and ok
        elif name == "attendance":
            from bench import attendance

            ok = attendance.run(args.checkins, clients=args.peak_clients, past=args.past,
                                write=not args.no_write) and ok
        elif name == "letters":
            from bench import letters

            ok = letters.run(args.letters, archive=args.archive, write=not args.no_write) and ok
        elif name == "permits":
            from bench import permits

            ok = permits.run(args.permits, small=args.permits_small,
                             submissions=args.permit_submissions, clients=args.permit_clients,
                             write=not args.no_write) and ok
        elif name == "notify":
            from bench import notify

            ok = notify.run(args.notifications, write=not args.no_write) and ok
        elif name == "pages":
            from bench import pages
            ok = pages.run(args.page_requests, write=not args.no_write) and ok
        elif name == "morning":
            from bench import morning

            ok = morning.run(args.morning_employees, clients=args.morning_clients,
                             seconds=args.morning_seconds, write=not args.no_write) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
