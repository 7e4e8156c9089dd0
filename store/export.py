"""Copy a store table to a CSV or Parquet file for use outside gluelab."""

from __future__ import annotations

from pathlib import Path

from store.connection import DEFAULT_STORE, read_store

EXPORTABLE_TABLES = (
    "datasets",
    "images",
    "runs",
    "metrics",
    "image_scores",
    "artifacts",
    "published_results",
    "deployments",
)
FORMATS = {".csv": "(FORMAT csv, HEADER true)", ".parquet": "(FORMAT parquet)"}


def export_table(table: str, out: Path | str, store: Path | str = DEFAULT_STORE) -> int:
    """Write `table` to `out` (format from its suffix, .csv or .parquet); returns the number of rows."""
    if table not in EXPORTABLE_TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(EXPORTABLE_TABLES)}")
    out = Path(out)
    if out.suffix not in FORMATS:
        raise ValueError(f"{out}: the file name must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    with read_store(store) as con:
        con.execute(f"COPY {table} TO '{_quoted(out)}' {FORMATS[out.suffix]}")
        (count,) = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        return count


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
