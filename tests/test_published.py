"""The study's published figures in the store, and the Table-5-style `gluelab results` output."""

from __future__ import annotations

import csv
import json

from engine.cli import main as gluelab
from store.published import PUBLISHED_CSV, PUBLISHED_SOURCE, load_published_results, published_results


def _csv_rows() -> list[dict]:
    with PUBLISHED_CSV.open() as handle:
        return list(csv.DictReader(handle))


def test_loading_is_idempotent_and_keeps_every_figure(tmp_path):
    store = tmp_path / "s.duckdb"
    rows = _csv_rows()
    assert load_published_results(store) == len(rows)
    assert load_published_results(store) == len(rows)
    stored = published_results(store)
    assert len(stored) == len(rows) and set(stored.source) == {PUBLISHED_SOURCE}
    keyed = stored.set_index(["source_table", "part", "condition", "model", "backbone", "metric"])
    for row in rows:
        figure = keyed.loc[
            (row["source_table"], row["part"], row["condition"], row["model"], row["backbone"], row["metric"])
        ]
        assert figure["mean"] == float(row["mean"])
        assert (figure["std"] != figure["std"]) if row["std"] == "" else figure["std"] == float(row["std"])


def test_results_command_prints_the_part_table_in_every_format(tmp_path, capsys):
    store = str(tmp_path / "s.duckdb")
    assert gluelab(["load-published", "--store", store]) == 0
    capsys.readouterr()

    assert gluelab(["results", "--part", "part1", "--condition", "baseline", "--format", "json", "--store", store]) == 0
    records = json.loads(capsys.readouterr().out)
    cfa = next(r for r in records if r["model"] == "CFA" and r["backbone"] == "ResNet18")
    assert (cfa["image_auroc_mean"], cfa["image_auroc_std"], cfa["inference_ms_mean"]) == (0.81, 0.015, 256.61)

    assert gluelab(["results", "--part", "part16", "--format", "table", "--store", store]) == 0
    table = capsys.readouterr().out
    assert "0.927 ± " in table  # FastFlow / CaiT image AUROC on part16 (Table 6)

    assert gluelab(["results", "--part", "part6", "--format", "csv", "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("source,part,condition,model,backbone,device,preset,image_auroc_mean")
    assert len(lines) - 1 == len({(r["model"], r["backbone"]) for r in _csv_rows() if r["part"] == "part6"})


def test_results_for_an_unknown_part_say_so(tmp_path, capsys):
    store = str(tmp_path / "s.duckdb")
    gluelab(["load-published", "--store", store])
    assert gluelab(["results", "--part", "part99", "--store", store]) == 2
    assert "no results for part 'part99'" in capsys.readouterr().err


def test_export_writes_csv_and_parquet(tmp_path, capsys):
    import pandas as pd

    store = str(tmp_path / "s.duckdb")
    gluelab(["load-published", "--store", store])
    assert gluelab(["export", "published_results", "--out", str(tmp_path / "p.csv"), "--store", store]) == 0
    assert gluelab(["export", "published_results", "--out", str(tmp_path / "p.parquet"), "--store", store]) == 0
    csv_rows, parquet_rows = pd.read_csv(tmp_path / "p.csv"), pd.read_parquet(tmp_path / "p.parquet")
    assert len(csv_rows) == len(parquet_rows) == len(_csv_rows())
    assert gluelab(["export", "secrets", "--out", str(tmp_path / "x.csv"), "--store", store]) == 2
    assert "unknown table 'secrets'" in capsys.readouterr().err
