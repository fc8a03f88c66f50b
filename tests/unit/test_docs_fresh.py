import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_docs_match_the_code(tmp_path):
    """`make docs` output is committed with the change that alters an API or a contract."""
    subprocess.run([sys.executable, "-m", "pamong.cli.main", "docs", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    generated = sorted(p.name for p in tmp_path.iterdir())
    assert generated == sorted(p.name for p in DOCS.glob("*.json"))
    for name in generated:
        assert (tmp_path / name).read_text() == (DOCS / name).read_text(), f"run make docs: {name}"
