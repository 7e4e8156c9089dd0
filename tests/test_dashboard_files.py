"""The dashboard opens only files inside the store's artifact folder or a part's registered root.

A store is just a file that can be handed around; its rows must not be able to make the dashboard show
any other file on the server, whether by `..`, an absolute path or a symlink leading out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from store import files, write_store
from store.runs import artifacts_dir
from tests.conftest import generated_store

APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
RUN_ID = "crafted0000000000"


def test_paths_that_leave_their_folder_are_refused(tmp_path):
    folder = tmp_path / "artifacts"
    (folder / "run").mkdir(parents=True)
    (folder / "run" / "map.png").write_bytes(b"")
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"")
    (folder / "run" / "link.png").symlink_to(secret)

    assert files.inside(folder, "run/map.png") == (folder / "run" / "map.png").resolve()
    for path in ("../secret.png", "run/../../secret.png", str(secret), "/etc/passwd", "run/link.png", ""):
        with pytest.raises(files.OutsideFolder):
            files.inside(folder, path)
    with pytest.raises(files.OutsideFolder):
        files.part_path("relative/root", "train/good/000.png")


def crafted_store(tmp_path: Path) -> tuple[Path, Path]:
    """A real store whose kept-heatmap rows and one image row point at a file outside its folders.

    Four defective examples of one finished run: heatmap path with `..`, absolute heatmap path,
    heatmap through a symlink out of the artifact folder, and an image path with `..` out of the part root.
    """
    store = generated_store(tmp_path)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.full((48, 64), 200, np.uint8)).save(secret)
    run_folder = artifacts_dir(store) / RUN_ID
    run_folder.mkdir(parents=True)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(run_folder / "ok.png")
    (run_folder / "link.png").symlink_to(secret)
    with write_store(store) as con:
        defective = [
            row[0]
            for row in con.execute(
                "SELECT image_path FROM images WHERE part = 'part1' AND label = 'anomalous' ORDER BY image_path LIMIT 3"
            ).fetchall()
        ]
        escaping_image = "../" * 12 + str(secret).lstrip("/")
        con.execute(
            """INSERT INTO images SELECT part, ?, split, label, defect_type, NULL, width, height, original_mode,
                      mean_brightness, over_exposed, region, severity, defect_area_px, exposure_stops
               FROM images WHERE part = 'part1' AND image_path = ?""",
            [escaping_image, defective[0]],
        )
        con.execute(
            """INSERT INTO runs (run_id, part, model, backbone, preset, seed, condition, status, host, pid, started_at)
               VALUES (?, 'part1', 'padim', 'tf_efficientnet_lite0', 'cpu', 0, 'baseline', 'finished', 'h', 1, now())""",
            [RUN_ID],
        )
        rows = [
            (defective[0], "../" * 12 + str(secret).lstrip("/")),
            (defective[1], str(secret)),
            (defective[2], f"{RUN_ID}/link.png"),
            (escaping_image, f"{RUN_ID}/ok.png"),
        ]
        for image_path, heatmap in rows:
            con.execute(
                "INSERT INTO artifacts VALUES (?, ?, ?, ?, 0.0, 1.0)", [RUN_ID, image_path, heatmap, f"{RUN_ID}/ok.png"]
            )
            con.execute("INSERT INTO image_scores VALUES (?, ?, 'anomalous', 0.9, true)", [RUN_ID, image_path])
    return store, secret


def test_a_crafted_store_cannot_make_the_drilldown_show_a_file_outside_its_folders(tmp_path, monkeypatch):
    store, secret = crafted_store(tmp_path)
    monkeypatch.setenv("GLUELAB_STORE", str(store))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.switch_page("views/part_drilldown.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]

    refusals = [w.value for w in app.warning if "not shown" in w.value.lower()]
    assert len(refusals) == 4, [w.value for w in app.warning]
    assert all("outside" in text or "not a path inside" in text for text in refusals), refusals
    images = app.get("image")
    captions = [image.proto.imgs[0].caption for image in images]
    assert not any("heatmap" in caption for caption in captions), captions  # no kept heatmap was good to show
    assert captions.count("Input") == 3  # the three examples whose image lies inside the part's root
