"""Letters' rules: numbering templates, the flow table, the signer rule, retention."""

from datetime import date

import pytest

from services.letters import domain

pytestmark = pytest.mark.unit


def number(template, seq=15, day=date(2020, 4, 7), unit="OR", classification="000.8.3.3",
           security="B", kind="surat_dinas"):
    return domain.render_number(template, seq=seq, day=day, unit_code=unit,
                                classification=classification, security=security, kind=kind)


@pytest.mark.parametrize("template, args, expected", [
    ("{klasifikasi}/{urut}/{unit}", {}, "000.8.3.3/15/OR"),
    ("{urut:3}/{unit}-{klasifikasi}/{bulan_romawi}/{tahun}",
     {"seq": 1, "unit": "KPA.1", "classification": "900", "day": date(2017, 1, 9)},
     "001/KPA.1-900/I/2017"),
    ("{derajat}-{urut}/{unit}/{klasifikasi}/{bulan}/{tahun}",
     {"seq": 99, "unit": "IJ", "classification": "KP.07.6", "security": "R"},
     "R-99/IJ/KP.07.6/04/2020"),
    ("NOMOR {urut} TAHUN {tahun}", {"seq": 23}, "NOMOR 23 TAHUN 2020"),
    ("{jenis}/{urut:4}", {"seq": 12345}, "surat_dinas/12345"),  # padding never truncates
])
def test_every_domain_template_form(template, args, expected):
    assert domain.check_template(template) == []
    assert number(template, **args) == expected


def test_roman_months():
    assert [domain.roman_month(m) for m in range(1, 13)] == [
        "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
    assert number("{urut}/{bulan_romawi}", seq=3, day=date(2026, 12, 31)) == "3/XII"


@pytest.mark.parametrize("template, problem", [
    ("{klasifikasi}/{unit}", "{urut} exactly once"),
    ("{urut}/{urut}", "{urut} exactly once"),
    ("{urut}/{tanggal}", "unknown placeholder(s) tanggal"),
    ("{urut}/{tahun:4}", "only {urut} takes a width"),
    ("{urut}/{unit", "malformed braces"),
    ("{urut}" + "x" * 120, "at most 120"),
])
def test_bad_templates_are_named(template, problem):
    assert any(problem in p for p in domain.check_template(template))


def test_the_sequence_resets_each_year_and_is_per_kind_only_when_asked():
    assert domain.sequence_id("3510.03", "nota_dinas", 2026, False) == "3510.03:*:2026"
    assert domain.sequence_id("3510.03", "nota_dinas", 2027, False) == "3510.03:*:2027"
    assert domain.sequence_id("3510.03", "nota_dinas", 2026, True) == "3510.03:nota_dinas:2026"


def test_the_nearest_configured_unit_numbers_and_a_kind_may_have_its_own_template():
    configs = {"3510.03": {"template": "{urut}/{unit}", "unit_code": "DINKES",
                           "kinds": {"keputusan": "NOMOR {urut} TAHUN {tahun}"}}}
    chain = ["3510.03.01", "3510.03", "3510"]
    assert domain.scheme_for(configs, chain, "nota_dinas") == (
        "3510.03", "{urut}/{unit}", False, "DINKES")
    assert domain.scheme_for(configs, chain, "keputusan")[1] == "NOMOR {urut} TAHUN {tahun}"
    assert domain.scheme_for({}, chain, "nota_dinas") is None


def letter(state, verifiers=("v1", "v2"), step=0):
    return {"state": state, "step": step, "drafter": {"nip": "d"}, "signer": {"nip": "s"},
            "verifiers": [{"nip": v} for v in verifiers]}


def test_the_flow_table():
    assert domain.next_state(letter("draft"), "submit") == "in_review"
    assert domain.next_state(letter("draft", verifiers=()), "submit") == "awaiting_signature"
    assert domain.next_state(letter("in_review", step=0), "approve") == "in_review"
    assert domain.next_state(letter("in_review", step=1), "approve") == "awaiting_signature"
    assert domain.next_state(letter("in_review"), "return") == "returned"
    assert domain.next_state(letter("awaiting_signature"), "return") == "returned"
    assert domain.next_state(letter("returned"), "submit") == "in_review"
    assert domain.next_state(letter("awaiting_signature"), "sign") == "signed"
    with pytest.raises(domain.IllegalStep) as refused:
        domain.next_state(letter("draft"), "sign")
    assert refused.value.state == "draft" and refused.value.allowed == ["submit", "withdraw"]
    with pytest.raises(domain.IllegalStep) as refused:
        domain.next_state(letter("signed"), "return")
    assert refused.value.allowed == [] and "final" in str(refused.value)


def test_who_plays_which_part():
    assert domain.roles_in(letter("draft"), "d") == {"drafter"}
    assert domain.roles_in(letter("in_review", step=1), "v2") == {"verifier", "reviewer"}
    assert domain.roles_in(letter("in_review", step=1), "v1") == set()  # already gave paraf
    assert domain.roles_in(letter("in_review"), "s") == set()  # not yet the signer's turn
    assert domain.roles_in(letter("awaiting_signature"), "s") == {"signer", "reviewer"}


def test_a_resubmission_starts_the_paraf_round_again():
    returned = letter("returned", step=1)
    returned["verifiers"][0].update(status="approved")
    changes = domain.step_changes(returned, "submit", "d", None, "t")
    assert changes["step"] == 0 and {v["status"] for v in changes["verifiers"]} == {"pending"}


def employee(nip="1", may_sign=False, status="active"):
    return {"_id": nip, "status": status,
            "position": {"id": "p-staff", "title": "Analis", "may_sign": may_sign}}


def acting(kind="plt", start="2026-12-01", end="2026-12-31", ended_on=None):
    return {"nip": "1", "kind": kind, "position": "p-head", "unit": "3510.03",
            "start": start, "end": end, "ended_on": ended_on}


def test_the_signer_rule_with_acting_officials():
    day = date(2026, 12, 5)
    own = domain.signing_capacity(employee(may_sign=True), [], day)
    assert own == {"position": "p-staff", "title": "Analis", "acting": None}
    assert domain.signing_capacity(employee(), [], day) is None
    plt = domain.signing_capacity(employee(), [acting()], day)
    assert plt["position"] == "p-head" and plt["acting"] == "plt"
    assert domain.signer_title({**plt, "title": "Kepala Dinas"}) == "Plt. Kepala Dinas"
    assert domain.signing_capacity(employee(), [acting(start="2026-12-06")], day) is None
    assert domain.signing_capacity(employee(), [acting(ended_on="2026-12-04")], day) is None
    assert domain.signing_capacity(employee(), [acting(ended_on="2026-12-05")], day)
    assert domain.signing_capacity(employee(may_sign=True, status="retired"), [], day) is None


def test_retention_dates_count_whole_years_after_the_year_of_finishing():
    assert domain.retention_dates(date(2026, 3, 1), 2, 3) == (date(2029, 1, 1),
                                                              date(2032, 1, 1))
    assert domain.retention_dates(date(2026, 12, 31), 0, 1) == (date(2027, 1, 1),
                                                                date(2028, 1, 1))


def test_classification_codes_are_hierarchical():
    assert domain.classification_chain("000.8.3.3") == ["000.8.3.3", "000.8.3", "000.8", "000"]
    assert domain.CLASSIFICATION_CODE.match("800.1.11")
    assert not domain.CLASSIFICATION_CODE.match("8001")


def test_search_words():
    assert domain.words("Undangan Rapat Koordinasi: SPBE 2026", "di") == [
        "2026", "koordinasi", "rapat", "spbe", "undangan"]


def test_after_write_applies_dotted_sets_incs_and_pushes_without_touching_the_input():
    letter = {"state": "in_review", "version": 3, "step": 0,
              "verifiers": [{"nip": "a", "status": "pending"}, {"nip": "b", "status": "pending"}],
              "timeline": [{"step": "submit"}]}
    update = {"$set": {"verifiers.0.status": "approved", "step": 1, "state": "in_review"},
              "$inc": {"version": 1}, "$push": {"timeline": {"step": "approve"}}}
    after = domain.after_write(letter, update)
    assert after["verifiers"][0]["status"] == "approved" and after["step"] == 1
    assert after["version"] == 4 and [e["step"] for e in after["timeline"]] == ["submit",
                                                                                "approve"]
    assert letter["verifiers"][0]["status"] == "pending" and letter["version"] == 3
    assert len(letter["timeline"]) == 1
