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


# -- mail: delivery, incoming letters, files, dispositions (helper MAIL) ---------------------

CLERK = "199305052020122006"  # a sekretariat clerk of Dinas Kesehatan (not in the directory)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(120)


def clerk(client, method, path, opd="3510.03", **kwargs):
    return call(client, method, path, CLERK, roles=("sekretariat",), opd=opd, **kwargs)


def incoming(unit="3510.03", **changes):
    return {"unit": unit, "sender": {"name": "Kepala Dinas Kesehatan Provinsi",
                                     "organisation": "Dinas Kesehatan Provinsi Jawa Timur"},
            "sender_number": "440/1234/101.5/2025", "sender_date": "2025-01-06",
            "classification": "000.8.3.3", "subject": "Permintaan data imunisasi",
            "summary": "Mohon dikirim data imunisasi triwulan IV.", **changes}


def register(client, body=None, key=None, opd="3510.03"):
    headers = {"Idempotency-Key": key} if key else None
    r = clerk(client, "POST", "/incoming", opd=opd, headers=headers, json=body or incoming())
    assert r.status_code in (200, 201), r.text
    return r.json()


def upload(client, letter_id, data, name="scan.pdf", nip=CLERK, roles=("sekretariat",),
           opd="3510.03", content_type="application/pdf"):
    return call(client, "POST", f"/letters/{letter_id}/attachments", nip, roles=roles, opd=opd,
                params={"name": name}, data=data, headers={"Content-Type": content_type})


def dispose(client, path, nip, to, roles=("pimpinan",), opd="3510.03", key=None, **body):
    """``path``: ``/receipts/<id>`` or ``/dispositions/<id>``."""
    headers = {"Idempotency-Key": key} if key else None
    return call(client, "POST", f"{path}/dispositions", nip, roles=roles, opd=opd,
                headers=headers, json={"to": list(to), "instruction": "Tindak lanjuti",
                                       **body})


def publish_sent(config, letter, internal, external=(), event=None):
    """``letter.sent`` for a signed letter, as the sealing step publishes it (or ``event``,
    an envelope published before, again)."""
    from pamong.events.contracts import dump_data
    from pamong.events.envelope import new_event
    from pamong.testing import publish_raw

    if event is None:
        data = {"id": letter["id"], "number": letter["number"], "kind": letter["kind"],
                "unit": letter["unit"], "opd": letter["opd"], "security": letter["security"],
                "urgency": letter["urgency"], "subject": letter["subject"],
                "signed_at": datetime.fromisoformat(letter["signed_at"]),
                "internal": list(internal), "external": list(external), "sha256": "0" * 64}
        event = new_event("letters", "letter.sent", dump_data("letter.sent", 1, data),
                          opd=letter["opd"])
    publish_raw(config, "letters", "letter.sent", event)
    return event
