"""What the permits integration tests share: tokens, a realistic permit type, and the calls
every test makes (publish a type, apply, upload a document, take an action).

    def test_x(permits):                # fixture from tests/integration/conftest.py
        client = permits.client
        publish_type(client)                           # SIP of Dinas Kesehatan (3510.03)
        app = ready(client, citizen(client))           # a draft with every mandatory document
        r = act(client, app["id"], "submit", citizen(client))
        r = act(client, app["id"], "register", officer(client), version=2)

The directory replica of the ``permits`` fixture holds the attendance tests' small Pemda:
OPDs ``3510.03`` Dinas Kesehatan, ``3510.04`` Dinas Pendidikan and ``3510.09``.
"""

import uuid

API = "/api/permits/v1"
OPD = "3510.03"  # Dinas Kesehatan: the responsible OPD of the default type
OTHER_OPD = "3510.04"  # Dinas Pendidikan: a recommender, or "another OPD"
PEMDA = "3510"

# a valid NIK: Jawa Timur / Banyuwangi / district 03, a woman born 05-12-1990, sequence 0001
NIK = "3510034512900001"
BIRTH_DATE = "1990-12-05"
NIK_OTHER = "3510031708850002"  # a man born 17-08-1985
PHONE = "081234567890"
PHONE_E164 = "+6281234567890"

# files as their first bytes show them (content sniffing, not the name or Content-Type)
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + bytes(120)
CONTENT_TYPES = {PDF: "application/pdf", PNG: "image/png", JPEG: "image/jpeg"}


# -- tokens ---------------------------------------------------------------------------------

def citizen(client, sub="citizen-1", nik=NIK, name="Siti Aminah"):
    """A pemohon's token (``nik``/``name`` None: a token without them)."""
    return client.token(roles=("pemohon",), opd=None, sub=sub, nik=nik, name=name)


def officer(client, opd=OPD, sub="officer-1", roles=("petugas",)):
    """A petugas of ``opd`` (counter and front office)."""
    return client.token(roles=roles, opd=opd, sub=sub, name=f"Petugas {sub}")


def reviewer(client, opd=OPD, sub="reviewer-1"):
    return officer(client, opd, sub, roles=("verifikator",))


def head(client, opd=OPD, sub="head-1"):
    return officer(client, opd, sub, roles=("pimpinan",))


def admin(client, sub="admin-1"):
    return client.token(roles=("admin",), opd=PEMDA, sub=sub, name="Admin Pemda")


# -- permit types ---------------------------------------------------------------------------

def requirement(key, name, mandatory=True, types=("application/pdf",), max_bytes=2_000_000):
    return {"key": key, "name": name, "mandatory": mandatory, "types": list(types),
            "max_bytes": max_bytes}


def type_body(**changes):
    """The service standard of a Surat Izin Praktik (SIP) for a nurse at Dinas Kesehatan:
    free, valid 5 years, 5 working days; ``changes`` replace whole fields."""
    return {
        "name": "Surat Izin Praktik Perawat (SIP)",
        "opd": OPD,
        "legal_basis": "UU 17/2023 tentang Kesehatan; Permenkes 26/2019",
        "description": "Izin praktik bagi perawat di fasilitas pelayanan kesehatan atau "
                       "praktik mandiri.",
        "requirements": [
            requirement("ktp", "KTP pemohon", types=("image/jpeg", "image/png",
                                                     "application/pdf")),
            requirement("str", "Surat Tanda Registrasi (STR) yang masih berlaku"),
            requirement("rekomendasi_ppni", "Rekomendasi organisasi profesi (PPNI)"),
            requirement("pas_foto", "Pas foto 4x6 berlatar merah", mandatory=False,
                        types=("image/jpeg", "image/png"), max_bytes=1_000_000),
        ],
        "stages": [
            {"key": "pendaftaran", "name": "Pemeriksaan berkas", "sla_days": 1},
            {"key": "teknis", "name": "Verifikasi teknis", "sla_days": 2},
            {"key": "keputusan", "name": "Keputusan", "sla_days": 1},
            {"key": "penerbitan", "name": "Penandatanganan dan penerbitan", "sla_days": 1},
        ],
        "fee": 0,
        "validity_months": 60,
        "site_visit": False,
        "recommenders": [],
        "needs_business": False,
        "active": True,
        **changes,
    }


def publish_type(client, code="SIP", token=None, **changes):
    """``PUT /types/<code>`` as admin; the published standard (200 or 201)."""
    r = client.request("PUT", f"{API}/types/{code}", token=token or admin(client),
                       json=type_body(**changes))
    assert r.status_code in (200, 201), r.text
    return r.json()


# -- applications ---------------------------------------------------------------------------

def applicant(**changes):
    """An applicant block as a counter officer types it (a pemohon's own NIK and name come
    from the token when it has them; sending the same values is fine)."""
    return {"nik": NIK, "name": "Siti Aminah", "birth_date": BIRTH_DATE, "phone": PHONE,
            "email": "siti.aminah@example.id",
            "address": {"street": "Jl. Ahmad Yani No. 12", "village": "Penganjuran",
                        "district": "Banyuwangi", "regency": "Kabupaten Banyuwangi",
                        "province": "Jawa Timur", "region_code": "35.10.03.1001"},
            "channel": "whatsapp", **changes}


def application_body(code="SIP", business=None, **applicant_changes):
    body = {"type": code, "applicant": applicant(**applicant_changes)}
    if business is not None:
        body["business"] = business
    return body


def create(client, token, body=None, key=None):
    """``POST /applications``: the raw response (``key`` None: a fresh Idempotency-Key)."""
    return client.request("POST", f"{API}/applications", token=token,
                          headers={"Idempotency-Key": key or f"k-{uuid.uuid4().hex}"},
                          json=body if body is not None else application_body())


def apply(client, token, code="SIP", key=None, body=None, **applicant_changes):
    """A new draft application (asserting 201/200); its JSON."""
    r = create(client, token, body or application_body(code, **applicant_changes), key)
    assert r.status_code in (200, 201), r.text
    return r.json()


def get(client, app_id, token):
    """``GET /applications/<id>``: the raw response."""
    return client.request("GET", f"{API}/applications/{app_id}", token=token)


def read(client, app_id, token):
    r = get(client, app_id, token)
    assert r.status_code == 200, r.text
    return r.json()


def upload(client, app_id, requirement_key, token, data=PDF, content_type=None, name=None):
    """``POST /applications/<id>/documents/<requirement>`` with the raw bytes: the raw
    response."""
    headers = {"Content-Type": content_type or CONTENT_TYPES.get(data,
                                                                "application/octet-stream")}
    params = {"name": name} if name else None
    return client.request("POST", f"{API}/applications/{app_id}/documents/{requirement_key}",
                          token=token, data=data, headers=headers, params=params)


def upload_mandatory(client, app, token):
    """Upload a PDF for every mandatory requirement of ``app``'s standard; the application
    as it then is."""
    for req in app["standard"]["requirements"]:
        if req["mandatory"]:
            data = PDF if "application/pdf" in req["types"] else (
                PNG if "image/png" in req["types"] else JPEG)
            r = upload(client, app["id"], req["key"], token, data)
            assert r.status_code in (200, 201), r.text
    return read(client, app["id"], token)


def ready(client, token, code="SIP", key=None, body=None, **applicant_changes):
    """A draft with every mandatory document, ready to submit."""
    app = apply(client, token, code, key, body, **applicant_changes)
    return upload_mandatory(client, app, token)


def act(client, app_id, action, token, **body):
    """``POST /applications/<id>/actions/<action>``: the raw response. Without ``version``
    in ``body`` the application's current version is read first (with the same token)."""
    if "version" not in body:
        body["version"] = read(client, app_id, token)["version"]
    return client.request("POST", f"{API}/applications/{app_id}/actions/{action}",
                          token=token, json=body)


def submitted(client, token=None, code="SIP", **applicant_changes):
    """A submitted application of ``token`` (default: citizen-1); its JSON."""
    token = token or citizen(client)
    app = ready(client, token, code, **applicant_changes)
    r = act(client, app["id"], "submit", token, version=app["version"])
    assert r.status_code == 200, r.text
    return r.json()


def ok(response):
    assert response.status_code == 200, response.text
    return response.json()


def step(client, app, action, token, **body):
    """Take ``action`` on the version of ``app`` we hold; the application after it."""
    return ok(act(client, app["id"], action, token, version=app["version"], **body))
