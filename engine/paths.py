"""Where gluelab keeps its machine-local files (converted and imported backbone weights).

`GLUELAB_HOME` overrides the default `~/.gluelab`; the results store is chosen separately with
`--store` / `GLUELAB_STORE` (see `store.DEFAULT_STORE`).
"""

from __future__ import annotations

import os
from pathlib import Path


def gluelab_home() -> Path:
    return Path(os.environ.get("GLUELAB_HOME", Path.home() / ".gluelab")).expanduser()


def weights_dir() -> Path:
    path = gluelab_home() / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path
