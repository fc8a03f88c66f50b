"""Every module serves its OpenAPI document, the same one ``make docs`` wrote to docs/."""

import json
from pathlib import Path

import pytest
import requests

DOCS = Path(__file__).resolve().parents[2] / "docs"

pytestmark = pytest.mark.reliability


def test_every_module_serves_the_document_in_docs(suite):
    for name, url in suite.urls.items():
        answer = requests.get(f"{url}/api/{name}/v1/openapi.json", timeout=30)
        assert answer.status_code == 200, (name, answer.text[:300])
        served = answer.json()
        assert served["paths"], name
        assert served == json.loads((DOCS / f"openapi-{name}.json").read_text()), name
