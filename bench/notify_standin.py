"""``python -m bench.notify_standin --port P --webhook-url U``: the WhatsApp Cloud API stand-in
in its own process for the notify bench (its CPU is not the bench's), with three bench
controls on top of the stand-in's own:

- ``GET /_bench/received``: every accepted send as ``[to digits, epoch seconds, callback]``;
  ``?count`` only how many (what the bench polls: the whole list of thousands of rows every
  second would cost this process and the bench CPU that the notify process needs);
- ``POST /_bench/reset`` ``{"auto_status": [...], "p500": f, "ptimeout": f, "seed": n,
  "n": sends to plan}``: forget what was received and plan the next sends' outcomes at random
  (``p500`` answered 500, ``ptimeout`` held past the client's timeout, the rest ok);
- ``GET /_bench/calls``: how many send calls came in, by outcome.
"""

import argparse
import json
import logging
import random
import signal
import sys
import threading
from collections import Counter

from services.notify.standins import WhatsAppStandin


class BenchWhatsApp(WhatsAppStandin):
    def handle(self, request):
        if request.path == "/_bench/received":
            if request.query == "count":
                with self._lock:
                    return 200, {"count": len(self.requests)}
            with self._lock:
                rows = [[r["to"], r["at"].timestamp(), r["callback_data"]]
                        for r in self.requests]
            return 200, {"received": rows}
        if request.path == "/_bench/calls":
            with self._lock:
                return 200, dict(Counter(str(c["outcome"]) for c in self.calls))
        if request.path == "/_bench/reset":
            settings = request.json() or {}
            rng = random.Random(settings.get("seed", 1))
            p500, ptimeout = settings.get("p500", 0.0), settings.get("ptimeout", 0.0)

            def outcome():
                roll = rng.random()
                return 500 if roll < p500 else "timeout" if roll < p500 + ptimeout else "ok"

            with self._lock:
                self.requests.clear()
                self.calls.clear()
                self.posted.clear()
                self._planned[:] = [outcome() for _ in range(settings.get("n", 0))]
                self.auto_status = list(settings.get("auto_status", []))
            return 200, {"planned": Counter(str(o) for o in self._planned)}
        return super().handle(request)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.notify_standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--app-secret", required=True)
    parser.add_argument("--phone-number-id", default="100200300")
    parser.add_argument("--hold-seconds", type=float, default=4.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    wa = BenchWhatsApp(app_secret=args.app_secret, phone_number_id=args.phone_number_id,
                       port=args.port, webhook_url=args.webhook_url)
    wa.hold_seconds = args.hold_seconds
    wa.status_on_timeout = True  # a held send was accepted: Meta reports it
    wa.webhook_retries = 5
    wa.start()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps({"url": wa.url}), flush=True)
    stop.wait()
    wa.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
