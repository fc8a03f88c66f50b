"""Notify's rules and templates (``services.notify.rules``, ``services.notify.templates``):
the shipped rules load and every one renders its sample on every channel; a rule naming an
unknown event type, template or placeholder fails at load with a message naming the rule;
rendering is strict (a missing placeholder is an error, never ""), sandboxed, HTML-escaped
only in the email's HTML; recipients, channels and heads of units are chosen as the issue
says."""

import re
import textwrap
from datetime import UTC, date, datetime

import pytest

from services.notify import rules, templates
from services.notify.rules import RulesError

pytestmark = pytest.mark.unit

SHIPPED = rules.load()

REQUIRED_EVENTS = {  # the issue's list of what the shipped rules cover
    "permit.registered", "permit.returned", "permit.decided", "permit.issued",
    "permit.expiring", "permit.sla_warning", "disposition.assigned", "disposition.overdue",
    "letter.submitted", "attendance.leave_decided", "attendance.absence_threshold_reached"}

GOOD_TEMPLATE = """\
whatsapp:
  name: izin_contoh
  body: "Izin {{1}} nomor {{2}}."
  parameters: ["{{ type_name }}", "{{ registration_number }}"]
sms: "Izin {{ type_name }} no. {{ registration_number }}. {{ links.tracking }}"
email:
  subject: "Izin {{ type_name }}"
  html: "<p>{{ type_name }} {{ recipient.name }}</p>"
  text: "{{ type_name }}"
inapp: {title: "Izin", body: "{{ type_name }}"}
sample:
  id: app-1
  registration_number: REG-2026-000001
  type: PBG
  type_name: Persetujuan Bangunan Gedung
  opd: "3510.05"
  contact: {phone: "+6281234567890", email: null, channel: whatsapp}
  decision: approved
  reason: null
"""


def write(tmp_path, rules_text, **template_texts):
    """A rules file and a template directory (over the shipped templates) under tmp_path."""
    (tmp_path / "templates").mkdir(exist_ok=True)
    for name, text in template_texts.items():
        (tmp_path / "templates" / f"{name}.yaml").write_text(textwrap.dedent(text))
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(rules_text))
    return path, tmp_path / "templates"


def one_rule(**overrides):
    rule = {"id": "contoh", "event": "permit.decided", "recipients": "[applicant]",
            "template": "contoh", "channels": "[whatsapp, sms, email, inapp]"}
    rule.update(overrides)
    lines = [f"  - id: {rule.pop('id')}"] + [f"    {k}: {v}" for k, v in rule.items()]
    return "rules:\n" + "\n".join(lines) + "\n"


def load_error(tmp_path, rules_text, **template_texts):
    path, directory = write(tmp_path, rules_text, **template_texts)
    with pytest.raises(RulesError) as caught:
        rules.load(path, directory)
    return str(caught.value)


def context(data, name="Budi", zone="Asia/Jakarta"):
    return rules.context_for(data, {"name": name, "timezone": zone}, "permit.decided",
                             datetime(2026, 12, 6, 3, 0, tzinfo=UTC), "https://x.go.id")


# -- the shipped rules ----------------------------------------------------------------------

def test_the_shipped_rules_cover_the_issues_list():
    assert REQUIRED_EVENTS <= {r.event for r in SHIPPED.rules}
    by_id = {r.id: r for r in SHIPPED.rules}
    assert by_id["permit_decided"].priority == "critical"
    assert by_id["letter_awaiting_signature"].when == {"awaiting.role": "signer"}
    assert {r.recipients[0].kind for r in SHIPPED.rules
            if r.event == "attendance.absence_threshold_reached"} == {"employee",
                                                                      "supervisor_of"}
    assert by_id["permit_sla_warning"].recipients[0] == rules.RecipientSpec("person", "officer")
    modules = {"permit": "permits", "letter": "letters", "disposition": "letters",
               "attendance": "attendance"}
    for rule in SHIPPED.rules:
        assert rule.source == modules[rule.event.split(".")[0]]  # the contract's module
        if rule.recipients == (rules.RecipientSpec("applicant"),):
            assert rule.channels == ("whatsapp", "sms", "email", "inapp")


@pytest.mark.parametrize("rule", SHIPPED.rules, ids=lambda r: r.id)
def test_each_shipped_rule_renders_its_sample_on_every_channel(rule):
    template = SHIPPED.templates[rule.template]
    data = rules.sample_data(template, rule.event, rule.version)
    content = templates.render(template, context(data), rule.channels)
    assert set(content) == set(rule.channels)
    whatsapp = content["whatsapp"]
    assert whatsapp["language"] == "id" and whatsapp["template"] == template.whatsapp["name"]
    for parameter in whatsapp["parameters"]:  # the Cloud API refuses these
        assert parameter and "\n" not in parameter and "    " not in parameter
    filled = templates.whatsapp_preview(template, whatsapp)
    assert "{{" not in filled and "None" not in filled
    if "sms" in content:
        assert 0 < len(content["sms"]["text"]) <= templates.SMS_MAX
        assert templates.sms_segments(content["sms"]["text"]) <= 2  # short, for cheap phones
    email = content["email"]
    assert email["subject"] and "\n" not in email["subject"]
    assert email["html"].startswith("<p>") and email["text"]
    assert content["inapp"]["title"] and content["inapp"]["body"]
    for text in (email["text"], content["inapp"]["body"], filled):
        assert "None" not in text and "{{" not in text and "{%" not in text


def test_an_applicant_message_names_the_permit_the_number_and_the_tracking_link():
    template = SHIPPED.templates["permit_registered"]
    data = rules.sample_data(template, "permit.registered", 1)
    content = templates.render(template, context(data))
    for text in (content["sms"]["text"], content["email"]["text"],
                 templates.whatsapp_preview(template, content["whatsapp"])):
        assert "Persetujuan Bangunan Gedung" in text and "REG-2026-000123" in text
        assert "https://x.go.id/lacak/REG-2026-000123" in text
        assert "23 Desember 2026" in text


def test_the_decision_says_approved_or_rejected_with_the_reason():
    template = SHIPPED.templates["permit_decided"]
    data = rules.sample_data(template, "permit.decided", 1)
    rejected = templates.render(template, context(data), ["sms"])["sms"]["text"]
    assert "DITOLAK" in rejected and "sempadan sungai." in rejected
    assert ".." not in rejected
    approved = templates.render(template, context({**data, "decision": "approved",
                                                   "reason": None}), ["sms"])["sms"]["text"]
    assert "DISETUJUI" in approved and "Alasan" not in approved


def test_handler_methods_give_one_consumer_per_event_type():
    methods = rules.handler_methods(SHIPPED)
    assert methods.pop("ruleset") is SHIPPED
    assert set(methods) == {rules.handler_name(e) for e in {r.event for r in SHIPPED.rules}}
    handler = methods["intake_letter_submitted"]
    (entrypoint,) = handler.nameko_entrypoints
    assert (entrypoint.source, entrypoint.event_type) == ("letters", "letter.submitted")


# -- start-up validation --------------------------------------------------------------------

def test_a_good_rule_file_loads(tmp_path):
    path, directory = write(tmp_path, one_rule(), contoh=GOOD_TEMPLATE)
    loaded = rules.load(path, directory)
    (rule,) = loaded.rules
    assert (rule.id, rule.source, rule.template) == ("contoh", "permits", "contoh")
    assert "permit_registered" in loaded.templates  # the shipped ones stay underneath


def test_an_unknown_event_type_fails_with_the_rule_and_the_type(tmp_path):
    message = load_error(tmp_path, one_rule(event="permit.teleported"), contoh=GOOD_TEMPLATE)
    assert "rule contoh" in message and "unknown event type 'permit.teleported'" in message
    assert str(tmp_path / "rules.yaml") in message


def test_an_unknown_template_fails(tmp_path):
    message = load_error(tmp_path, one_rule(template="tidak_ada"), contoh=GOOD_TEMPLATE)
    assert "rule contoh: unknown template 'tidak_ada'" in message


def test_an_unknown_placeholder_fails_naming_it_and_where(tmp_path):
    bad = GOOD_TEMPLATE.replace('sms: "Izin {{ type_name }}', 'sms: "Izin {{ typo_name }}')
    message = load_error(tmp_path, one_rule(), contoh=bad)
    assert "rule contoh: template contoh: unknown placeholder 'typo_name' in sms" in message


def test_an_unknown_nested_placeholder_fails(tmp_path):
    bad = GOOD_TEMPLATE.replace('inapp: {title: "Izin"', 'inapp: {title: "{{ contact.nama }}"')
    message = load_error(tmp_path, one_rule(), contoh=bad)
    assert "unknown placeholder 'contact.nama' in inapp.title" in message
    bad = GOOD_TEMPLATE.replace('{{ links.tracking }}', '{{ links.lacak }}')
    assert "unknown placeholder 'links.lacak' in sms" in load_error(tmp_path, one_rule(),
                                                                     contoh=bad)


def test_a_channel_without_text_fails(tmp_path):
    no_sms = re.sub(r"(?m)^sms:.*\n", "", GOOD_TEMPLATE)
    message = load_error(tmp_path, one_rule(), contoh=no_sms)
    assert "rule contoh: template contoh has no sms text" in message


def test_a_sample_that_does_not_fit_the_contract_fails(tmp_path):
    bad = GOOD_TEMPLATE.replace("decision: approved", "decision: maybe")
    message = load_error(tmp_path, one_rule(), contoh=bad)
    assert "sample does not fit permit.decided" in message and "decision" in message


def test_a_sample_that_does_not_render_fails(tmp_path):
    bad = GOOD_TEMPLATE.replace('text: "{{ type_name }}"', 'text: "{{ reason.title() }}"')
    message = load_error(tmp_path, one_rule(), contoh=bad)  # the sample's reason is null
    assert "rule contoh: the sample does not render" in message and "email.text" in message


def test_an_sms_over_918_characters_on_its_sample_fails(tmp_path):
    long = GOOD_TEMPLATE.replace('sms: "Izin {{ type_name }}', 'sms: "' + "x" * 900 +
                                 ' {{ type_name }}')
    message = load_error(tmp_path, one_rule(), contoh=long)
    assert "the SMS is" in message and "at most 918" in message


def test_bad_rule_shapes_fail_with_their_reason(tmp_path):
    cases = {
        one_rule(channels="[whatsapp, telegram]"): "channels must be distinct ones of",
        one_rule(priority="urgent"): "priority must be one of normal, critical",
        one_rule(recipients="[{boss_of: opd}]"): "unknown recipient {'boss_of': 'opd'}",
        one_rule(recipients="[{employee: pejabat}]"): "recipient employee: pejabat: the "
                                                      "event has no field 'pejabat'",
        one_rule(event="permit.paid"): "recipient applicant needs an event with a contact",
        one_rule(when="{contact.telepon: x}"): "when contact.telepon: contact has no field",
        one_rule(extra="1"): "unknown keys extra",
        "rules:\n  - id: Contoh\n": "id must be lower case",
        "rules: {}\n": "must hold 'rules:' with a list",
        "rules: [\n": "not valid YAML",
    }
    for text, expected in cases.items():
        assert expected in load_error(tmp_path, text, contoh=GOOD_TEMPLATE), text


def test_an_applicant_recipient_needs_a_contact(tmp_path):
    text = one_rule(event="permit.sla_warning", channels="[inapp]")
    template = "inapp: {title: t, body: '{{ officer }}'}\nsample: {}\n"
    message = load_error(tmp_path, text, contoh=template)
    assert "recipient applicant needs an event with a contact field" in message


def test_two_rules_with_one_id_fail(tmp_path):
    text = one_rule() + one_rule()[len("rules:\n"):]
    assert "rule contoh: the id is used by another rule" in load_error(tmp_path, text,
                                                                       contoh=GOOD_TEMPLATE)


def test_bad_template_files_fail_at_load(tmp_path):
    cases = {
        "sms: '{{ type_name '\n": "sms line 1",
        "sms: x\nfax: y\n": "unknown keys fax",
        "sample: {}\n": "no channel text at all",
        "email: {subject: s, text: t}\n": "email lacks html",
        "whatsapp: {name: Izin Contoh, parameters: []}\n": "whatsapp.name must be",
        "whatsapp: {name: x, body: 'a {{1}} {{2}}', parameters: ['{{ a }}']}\n":
            "whatsapp.body has slots [1, 2] but 1 parameters",
    }
    for text, expected in cases.items():
        assert expected in load_error(tmp_path, one_rule(), contoh=text), text


def test_an_unused_template_must_render_its_own_sample(tmp_path):
    adhoc = "inapp: {title: 'Info', body: '{{ pesan }}'}\nsample: {}\n"
    message = load_error(tmp_path, one_rule(), contoh=GOOD_TEMPLATE, pengumuman=adhoc)
    assert "template pengumuman" in message and "missing placeholder 'pesan'" in message


def test_a_deployment_directory_replaces_one_shipped_template(tmp_path):
    mine = (rules.SHIPPED_RULES.parent / "templates" / "permit_expiring.yaml").read_text() \
        .replace("Ajukan perpanjangan sebelum", "Segera perpanjang sebelum")
    (tmp_path / "permit_expiring.yaml").write_text(mine)
    loaded = rules.load(None, str(tmp_path))
    assert "Segera perpanjang" in loaded.templates["permit_expiring"].sms.source
    assert loaded.templates["permit_registered"].file.startswith(str(templates.SHIPPED_DIR))
    assert loaded.template_dirs[-1] == str(tmp_path)


def test_a_missing_rules_file_or_directory_fails(tmp_path):
    with pytest.raises(RulesError, match="cannot read the rules file"):
        rules.load(tmp_path / "none.yaml")
    with pytest.raises(RulesError, match="does not exist"):
        rules.load(None, str(tmp_path / "nowhere"))


# -- rendering ------------------------------------------------------------------------------

def template_of(text, name="t"):
    return templates.parse_template(name, textwrap.dedent(text))


def test_a_missing_placeholder_at_render_is_an_error_not_empty():
    template = template_of("""\
        sms: "Nomor {{ registration_number }}"
        inapp: {title: "{{ contact.sub }}", body: x}
        """)
    with pytest.raises(templates.RenderError) as caught:
        templates.render(template, context({}), ["sms"])
    assert caught.value.placeholder == "registration_number" and caught.value.channel == "sms"
    assert "missing placeholder 'registration_number'" in str(caught.value)
    with pytest.raises(templates.RenderError) as caught:
        templates.render(template, context({"contact": {}}), ["inapp"])
    assert caught.value.placeholder == "sub"


def test_a_null_value_renders_empty_and_a_channel_without_text_is_an_error():
    template = template_of("sms: 'Catatan: {{ note }}.'\n")
    assert templates.render(template, context({"note": None}))["sms"]["text"] == "Catatan: ."
    with pytest.raises(templates.RenderError, match="has no email text"):
        templates.render(template, context({"note": None}), ["email"])


def test_the_sandbox_refuses_internals():
    template = template_of("sms: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n")
    with pytest.raises(templates.RenderError):
        templates.render(template, context({}))
    template = template_of("sms: \"{{ items.append(1) }}\"\n")  # immutable: no mutation
    with pytest.raises(templates.RenderError, match="not allowed"):
        templates.render(template, context({"items": []}))


def test_html_is_escaped_only_in_the_email_html():
    template = template_of("""\
        sms: "{{ note }}"
        email: {subject: "{{ note }}", html: "<p>{{ note }}</p>", text: "{{ note }}"}
        inapp: {title: "{{ note }}", body: "{{ note }}"}
        """)
    note = "<b>A & B</b>"
    content = templates.render(template, context({"note": note}))
    assert content["email"]["html"] == "<p>&lt;b&gt;A &amp; B&lt;/b&gt;</p>"
    assert content["email"]["text"] == note == content["sms"]["text"]
    assert content["inapp"]["body"] == note == content["email"]["subject"]


def test_whatsapp_parameters_are_one_line_and_never_empty():
    template = template_of("""\
        whatsapp:
          name: contoh
          parameters: ["{{ a }}", "{{ b }}"]
        """)
    content = templates.render(template, context({"a": "baris 1\n\tbaris    2", "b": ""}),
                               language="en")
    assert content["whatsapp"] == {"template": "contoh", "language": "en",
                                   "parameters": ["baris 1 baris 2", "-"]}
    free = template_of("whatsapp: {text: 'Halo {{ recipient.name }}'}\n")
    assert templates.render(free, context({}, name="Sri"))["whatsapp"] == {"text": "Halo Sri"}


def test_an_sms_too_long_at_run_time_is_cut_with_an_ascii_ellipsis():
    template = template_of("sms: '{{ note }}'\n")
    text = templates.render(template, context({"note": "kata " * 400}))["sms"]["text"]
    assert len(text) <= templates.SMS_MAX and text.endswith("...")
    assert templates.sms_segments(text) == 6


def test_sms_segments_count_gsm7_and_unicode():
    assert templates.sms_segments("a" * 160) == 1
    assert templates.sms_segments("a" * 161) == 2
    assert templates.sms_segments("{" * 81) == 2  # extension characters take two septets
    assert templates.sms_segments("é" * 160) == 1  # é is in the GSM basic set
    assert templates.sms_segments("ā" * 70) == 1 and templates.sms_segments("ā" * 71) == 2


def test_indonesian_filters():
    assert templates.tanggal_of(date(2026, 12, 20)) == "20 Desember 2026"
    assert templates.tanggal_of("2027-01-05") == "5 Januari 2027"
    assert templates.rupiah(1500000) == "Rp1.500.000" and templates.rupiah(0) == "Rp0"
    assert templates.daftar(["KTP", "NPWP", "denah"]) == "KTP, NPWP dan denah"
    assert templates.daftar(["KTP"]) == "KTP" and templates.daftar([]) == ""
    assert templates.kalimat(" Sudah lengkap ") == "Sudah lengkap."
    assert templates.kalimat("Lengkap.") == "Lengkap." and templates.kalimat(None) == ""
    assert templates.cuti("CT") == "cuti tahunan" and templates.cuti("XX") == "XX"
    at = datetime(2026, 12, 6, 16, 30, tzinfo=UTC)  # 23.30 WIB, 00.30 WITA the next day
    template = template_of("sms: '{{ at | waktu }} / {{ at | tanggal }}'\n")
    assert templates.render(template, context({"at": at}))["sms"]["text"] == \
        "6 Desember 2026 23.30 WIB / 6 Desember 2026"
    assert templates.render(template, context({"at": at}, zone="Asia/Makassar"))["sms"][
        "text"] == "7 Desember 2026 00.30 WITA / 7 Desember 2026"


# -- recipients and channels ----------------------------------------------------------------

def test_channels_follow_the_rule_with_the_applicants_choice_first():
    everything = ("whatsapp", "sms", "email", "inapp")
    full = {"phone": "+6281234567890", "email": "a@b.id", "person": "warga-1"}
    assert rules.channels_for(everything, full) == list(everything)
    assert rules.channels_for(everything, full, "email") == ["email", "whatsapp", "sms",
                                                            "inapp"]
    assert rules.channels_for(everything, {**full, "phone": None}, "sms") == ["email", "inapp"]
    assert rules.channels_for(everything, {"person": "warga-1"}) == ["inapp"]
    assert rules.channels_for(everything, {"person": None}) == []


def test_an_applicant_recipient_from_the_contact():
    recipient = rules.applicant_recipient(
        {"phone": "+6281234567890", "email": "", "channel": "sms", "sub": "warga-1"},
        "Asia/Jakarta")
    assert recipient == {"key": "applicant", "person": "warga-1", "name": None,
                         "phone": "+6281234567890", "email": None, "timezone": "Asia/Jakarta"}
    assert rules.applicant_recipient({"phone": None, "email": None, "channel": "email"},
                                     "Asia/Jakarta")["person"] is None


def test_an_employee_recipient_normalises_the_phone():
    employee = {"_id": "198609262015051001", "name": "Budi", "display_name": "Budi, S.Kep.",
                "phone": "0812-3456-7890", "email": None}
    assert rules.employee_recipient(employee, "Asia/Makassar") == {
        "key": "198609262015051001", "person": "198609262015051001", "name": "Budi, S.Kep.",
        "phone": "+6281234567890", "email": None, "timezone": "Asia/Makassar"}
    assert rules.employee_recipient({**employee, "phone": "021-555"}, "x")["phone"] is None


def test_the_head_of_a_unit_is_the_acting_official_today_else_the_holder():
    head = {"_id": "197001011995031001", "unit": "3510.03", "status": "active",
            "position": {"heads_unit": True}}
    staff = {"_id": "198609262015051001", "unit": "3510.03", "status": "active",
             "position": {"heads_unit": False}}
    plh = {"unit": "3510.03", "nip": "197505052000032002", "start": "2026-12-01",
           "end": "2026-12-10", "ended_on": None}
    day = date(2026, 12, 6)
    assert rules.head_of_unit("3510.03", [staff, head], [], day) == head["_id"]
    assert rules.head_of_unit("3510.03", [staff, head], [plh], day) == plh["nip"]
    assert rules.head_of_unit("3510.03", [head], [{**plh, "ended_on": "2026-12-05"}],
                              day) == head["_id"]
    assert rules.head_of_unit("3510.03", [head], [plh], date(2026, 12, 11)) == head["_id"]
    assert rules.head_of_unit("3510.03", [{**head, "status": "retired"}], [], day) is None
    assert rules.head_of_unit("3510.04", [head], [plh], day) is None


def test_field_values_and_conditions():
    data = {"awaiting": {"nip": "1", "role": "signer"}, "list": [{"a": 1}, {"a": None}],
            "none": None}
    assert rules.field_values(data, "awaiting.nip") == ["1"]
    assert rules.field_values(data, "list.a") == [1]
    assert rules.field_values(data, "none") == [] == rules.field_values(data, "x.y")
    rule = rules.Rule(id="r", event="letter.submitted", source="letters", version=1,
                      recipients=(), template="t", channels=("inapp",),
                      when={"awaiting.role": "signer"})
    assert rule.matches(data)
    assert not rule.matches({"awaiting": {"nip": "1", "role": "verifier"}})
    either = rules.Rule(**{**rule.__dict__, "when": {"awaiting.role": ["signer", "verifier"]}})
    assert either.matches({"awaiting": {"role": "verifier"}})


def test_links_point_at_the_tracking_page_of_the_number():
    assert rules.links_for({"registration_number": "REG-2026-000001"}, "https://a.id/") == {
        "tracking": "https://a.id/lacak/REG-2026-000001"}
    assert rules.links_for({"registration_number": None}, None) == {
        "tracking": f"{rules.DEFAULT_PUBLIC_URL}/lacak"}
