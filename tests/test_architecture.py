"""The architecture the docs describe is the one the code has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def test_every_path_named_in_the_architecture_doc_exists():
    named = set(
        re.findall(r"`((?:engine|store|dashboard|tests|benchmarks|docs)/[\w/.<>-]*)`", ARCHITECTURE.read_text())
    )
    concrete = {path for path in named if "<" not in path}
    assert len(concrete) >= 15, concrete
    missing = sorted(path for path in concrete if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_stage_the_doc_lists_is_a_package_of_the_engine():
    stages = re.findall(r"^\| \w+ \| `(engine/\w+/)`", ARCHITECTURE.read_text(), flags=re.MULTILINE)
    assert stages == [
        "engine/ingest/",
        "engine/models/",
        "engine/evaluation/",
        "engine/analysis/",
        "engine/report/",
        "engine/cli/",
    ]
    for stage in stages:
        assert (ROOT / stage / "__init__.py").is_file(), stage
