"""Load the demo Pemda (``demo.py``) into a running directory, through its own API.

Used by ``make run`` (``pamong run --demo``). Idempotent: the imports change nothing the
second time, and the acting head is only assigned when the post has none.
"""

from datetime import date, timedelta

import requests

from pamong.auth import mint_token
from services.directory import csvio
from services.directory.demo import VACANT_HEAD_POSITION, demo_pemda

API = "/api/directory/v1"


def seed(base_url, config):
    session = requests.Session()
    token = mint_token(config, "demo-seed", ["admin"], opd="3510", name="make run")
    session.headers["Authorization"] = f"Bearer {token}"
    files = demo_pemda()
    for kind in csvio.KINDS:
        response = session.post(f"{base_url}{API}/imports/{kind}", data=files[kind].encode(),
                                headers={"Content-Type": "text/csv"}, timeout=120)
        response.raise_for_status()
        report = response.json()
        print(f"directory demo {kind}: {report['created']} created, "
              f"{report['unchanged']} unchanged")
    _acting_head(session, base_url, files["positions"])


def _acting_head(session, base_url, positions_csv):
    """The vacant head post gets a Plt: the holder of the first post under it."""
    current = session.get(f"{base_url}{API}/acting", params={"position": VACANT_HEAD_POSITION},
                          timeout=30)
    current.raise_for_status()
    if current.json()["items"]:
        return
    deputy_post = next(row.record["id"] for row in csvio.parse("positions", positions_csv).rows
                       if row.record["superior"] == VACANT_HEAD_POSITION)
    holders = session.get(f"{base_url}{API}/employees", params={"position": deputy_post},
                          timeout=30)
    holders.raise_for_status()
    nip = holders.json()["items"][0]["nip"]
    today = date.today()
    response = session.post(f"{base_url}{API}/acting", timeout=30, json={
        "kind": "plt", "position": VACANT_HEAD_POSITION, "nip": nip,
        "start": (today - timedelta(days=14)).isoformat(),
        "end": (today + timedelta(days=90)).isoformat()})
    response.raise_for_status()
    print(f"directory demo: Plt {nip} acts as head ({VACANT_HEAD_POSITION})")
