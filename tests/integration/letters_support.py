"""What the letters integration tests share: the attendance tests' small Pemda (fed to the
letters replica by real directory events), tokens, and letter bodies."""

from datetime import UTC, datetime, timedelta

from tests.integration.attendance_support import (
    NIP_HEAD,
    NIP_KABID,
    NIP_OTHER,
    NIP_STAFF,
    NIP_STAFF2,
    publish_directory,
)

API = "/api/letters/v1"
TEMPLATE = {"unit_code": "DINKES", "template": "{klasifikasi}/{urut}/{unit}/{tahun}"}
ACTING_NIP = NIP_STAFF2  # acts as head in the tests of a Plt


def token(client, nip, roles=("pegawai",), opd="3510.03.01"):
    return client.token(roles=roles, opd=opd, sub=f"u-{nip}", nip=nip)


def call(client, method, path, nip=None, roles=("pegawai",), opd="3510.03.01", **kwargs):
    tok = token(client, nip, roles, opd) if nip else client.token(roles=roles, opd=opd)
    return client.request(method, f"{API}{path}", token=tok, **kwargs)


def draft(signer=NIP_HEAD, verifiers=(NIP_KABID,), security="B", **changes):
    return {"kind": "nota_dinas", "classification": "000.8.3.3", "security": security,
            "urgency": "segera", "subject": "Undangan rapat koordinasi SPBE",
            "body": "Dengan hormat,\n\nKami mengundang Bapak/Ibu.",
            "addressees": [{"type": "internal", "unit": "3510.04", "name": "Kepala Dinas "
                            "Pendidikan"}],
            "copies": [], "verifiers": list(verifiers), "signer": signer, **changes}


def configure_numbering(client, unit="3510.03", **changes):
    r = call(client, "PUT", f"/numbering/{unit}", roles=("admin",), opd="3510",
             json={**TEMPLATE, **changes})
    assert r.status_code == 200, r.text
    return r.json()


def create(client, nip=NIP_STAFF, body=None, key=None):
    headers = {"Idempotency-Key": key} if key else None
    r = call(client, "POST", "/letters", nip, headers=headers, json=body or draft())
    assert r.status_code in (200, 201), r.text
    return r.json()


def step(client, letter_id, name, nip, roles=("pegawai",), **body):
    return call(client, "POST", f"/letters/{letter_id}/{name}", nip, roles=roles, json=body)


def act_as_head(config, nip=ACTING_NIP, start=None, end=None, kind="plt", version=1,
                ended_on=None):
    """An acting (Plt) assignment of ``nip`` to the head's position, as the directory sends."""
    today = datetime.now(UTC).date()
    data = {"id": f"acting-{nip[-4:]}", "kind": kind, "position": f"pos-{NIP_HEAD[-4:]}",
            "unit": "3510.03", "nip": nip, "start": start or today - timedelta(days=3),
            "end": end or today + timedelta(days=30), "version": version}
    if ended_on:
        publish_directory(config, "acting.ended", {**data, "ended_on": ended_on})
    else:
        publish_directory(config, "acting.assigned", data)


__all__ = ["NIP_HEAD", "NIP_KABID", "NIP_OTHER", "NIP_STAFF", "NIP_STAFF2"]  # re-exported
