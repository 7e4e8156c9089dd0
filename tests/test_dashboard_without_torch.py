"""The dashboard never imports torch: every page renders in a process where torch cannot be imported.

The dashboard runs beside evaluations on small machines; pulling in torch (directly, or through anomalib,
timm or the model registry) would cost seconds and hundreds of megabytes per session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from store.published import load_published_results

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(path.name for path in (ROOT / "dashboard" / "views").glob("*.py"))

RENDER_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # `import torch` now raises ImportError, here and in everything it would pull in
import dashboard.background, dashboard.cached_queries, dashboard.widgets
from streamlit.testing.v1 import AppTest

outcome = {}
for page in sys.argv[2:]:
    app = AppTest.from_file(sys.argv[1], default_timeout=120)
    app.switch_page(f"views/{page}")
    app.run()
    outcome[page] = [str(exception.value) for exception in app.exception]
heavy = sorted(name for name in ("anomalib", "lightning", "timm", "torchvision") if name in sys.modules)
print(json.dumps({"exceptions": outcome, "heavy": heavy}))
"""


def test_every_page_renders_with_torch_unimportable(tmp_path):
    store = tmp_path / "published.duckdb"
    load_published_results(store)
    result = subprocess.run(
        [sys.executable, "-c", RENDER_WITHOUT_TORCH, str(ROOT / "dashboard" / "app.py"), *PAGES],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "GLUELAB_STORE": str(store)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report["exceptions"]) == set(PAGES)
    assert report["exceptions"] == {page: [] for page in PAGES}
    assert report["heavy"] == []
