"""Viewing is open to everyone; submitting and cancelling evaluation requests need the engineer role.

The Runs page through AppTest on a real store (no worker: requests stay queued), the passphrase hashing and
`gluelab engineer set-passphrase`.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import stat
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import request_queue, roles
from engine.cli import main as gluelab
from engine.jobs import GridRequest, submit
from store.requests import requests_table, start_request, worker_lock
from tests.conftest import DASHBOARD_APP, generated_store

PASSPHRASE = "glue line 7 bead"
HASHED = roles.hash_passphrase(PASSPHRASE)
WITH_PASSPHRASE = {"engineers": {"passphrase_hash": HASHED}}
READ_ONLY = {"engineers": {}}  # a secrets file without a way to become an engineer


# ---------------------------------------------------------------------------------------------------------------
# Passphrases and the secrets file


def test_a_passphrase_verifies_against_its_hash_and_a_wrong_one_does_not():
    assert roles.verify_passphrase(PASSPHRASE, HASHED)
    assert not roles.verify_passphrase(PASSPHRASE + "x", HASHED)
    assert not roles.verify_passphrase(PASSPHRASE, "scrypt$16384$8$1$zz$00")  # malformed: refused, no error
    assert HASHED.startswith("scrypt$16384$8$1$") and len(HASHED.split("$")[4]) == 2 * roles.SALT_BYTES


def test_each_hash_has_its_own_salt():
    again = roles.hash_passphrase(PASSPHRASE)
    assert again != HASHED and again.split("$")[4] != HASHED.split("$")[4]
    assert roles.verify_passphrase(PASSPHRASE, again)


def set_passphrase(secrets: Path, typed: str, monkeypatch) -> int:
    """`gluelab engineer set-passphrase --secrets FILE`, the passphrase piped on stdin as a script would."""
    monkeypatch.setattr("sys.stdin", io.StringIO(typed + "\n"))
    return gluelab(["engineer", "set-passphrase", "--secrets", str(secrets)])


def test_set_passphrase_creates_a_private_secrets_file(tmp_path, monkeypatch):
    secrets = tmp_path / "deep" / "secrets.toml"
    assert set_passphrase(secrets, PASSPHRASE, monkeypatch) == 0
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert roles.verify_passphrase(PASSPHRASE, tomllib.loads(secrets.read_text())["engineers"]["passphrase_hash"])


def test_set_passphrase_replaces_the_hash_and_keeps_everything_else_in_the_file(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '# plant secrets\nplant = "line 3"\n\n[engineers]\nemails = ["a@plant.example"]\n'
        'passphrase_hash = "scrypt$1$1$1$00$00"\n\n[database]\npassword = "kept"\n'
    )
    assert set_passphrase(secrets, PASSPHRASE, monkeypatch) == 0
    text = secrets.read_text()
    values = tomllib.loads(text)
    assert text.startswith("# plant secrets\n") and values["plant"] == "line 3"
    assert values["engineers"]["emails"] == ["a@plant.example"] and values["database"] == {"password": "kept"}
    assert text.count("passphrase_hash") == 1
    assert roles.verify_passphrase(PASSPHRASE, values["engineers"]["passphrase_hash"])


def test_set_passphrase_refuses_a_short_one_and_writes_nothing(tmp_path, monkeypatch, capsys):
    secrets = tmp_path / "secrets.toml"
    assert set_passphrase(secrets, "short", monkeypatch) == 2
    assert "at least 8 characters" in capsys.readouterr().err
    assert not secrets.exists()


# ---------------------------------------------------------------------------------------------------------------
# The Runs page


@pytest.fixture(scope="module")
def part_store(tmp_path_factory) -> Path:
    """part1 with 10 generated images registered in a store, nothing run yet."""
    return generated_store(tmp_path_factory.mktemp("roles"), images=10)


@pytest.fixture
def store(part_store, tmp_path) -> Path:
    return Path(shutil.copy(part_store, tmp_path / "store.duckdb"))


def runs_page(store: Path, secrets: dict, monkeypatch, user: dict | None = None) -> AppTest:
    monkeypatch.setenv("GLUELAB_STORE", str(store))
    app = AppTest.from_file(str(DASHBOARD_APP), default_timeout=120)
    app.secrets = secrets
    if user is not None:
        app.user = user
    app.switch_page("views/runs.py")
    return checked(app.run())


def checked(app: AppTest) -> AppTest:
    assert not app.exception, [e.value for e in app.exception]
    return app


def has_form(app: AppTest) -> bool:
    return any(widget.key == request_queue.FORM_KEYS["parts"] for widget in app.multiselect)


def sign_in(app: AppTest, passphrase: str = PASSPHRASE) -> AppTest:
    app.text_input(key="engineer_passphrase").input(passphrase)
    return checked(app.button(key="engineer_sign_in_submit").click().run())


def refused(store: Path) -> list[str]:
    log = roles.refused_log(store)
    return log.read_text().splitlines() if log.exists() else []


def tiny_grid(**changes) -> GridRequest:
    return GridRequest(parts=("part1",), models=("legacy",), **changes)


def test_a_viewer_sees_the_queue_but_no_submit_form_and_is_told_how_to_enable_engineers(store, monkeypatch):
    submit(tiny_grid(), "engineer (passphrase)", "10.0.0.7", store)
    app = runs_page(store, READ_ONLY, monkeypatch)
    assert not has_form(app)
    note = " ".join(info.value for info in app.info)
    assert "read-only" in note and "`gluelab engineer set-passphrase`" in note and "`[auth]`" in note
    assert "Plant set-up" in note
    queue = app.dataframe[0].value
    assert queue[["request", "by", "from", "state", "runs"]].values.tolist() == [
        [1, "engineer (passphrase)", "10.0.0.7", "queued", "0 finished, 0 failed of 1"]
    ]
    assert not [button for button in app.button if button.key and button.key.startswith("cancel_")]
    assert (
        f"No worker is running for this store: queued requests wait until one starts. Start one on this machine with `gluelab worker --store {store}`."
        in [w.value for w in app.warning]
    )
    with worker_lock(store):  # what `gluelab worker` holds while it serves the store
        assert not runs_page(store, READ_ONLY, monkeypatch).warning


def test_a_wrong_passphrase_is_refused_and_logged_and_the_right_one_opens_the_form(store, monkeypatch):
    app = runs_page(store, WITH_PASSPHRASE, monkeypatch)
    assert not has_form(app)
    sign_in(app, "not the passphrase")
    assert "Wrong passphrase" in app.error[0].value and not has_form(app)
    (line,) = refused(store)
    assert line.endswith("refused engineer sign-in (wrong passphrase) from unknown client"), line
    assert line[:4].isdigit() and line[19] == "Z"  # 2026-11-30T01:50:00Z: UTC

    sign_in(app)
    assert has_form(app) and not app.error
    assert "Signed in as engineer (passphrase)" in " ".join(c.value for c in app.caption)


def test_an_engineer_queues_a_grid_once_and_is_told_when_it_is_already_queued(store, monkeypatch):
    app = sign_in(runs_page(store, WITH_PASSPHRASE, monkeypatch))
    app.multiselect(key="submit_models").set_value(["legacy"])
    checked(app.button(key="submit_request").click().run())
    assert app.success[0].value == "Queued as request 1: 1 runs."
    queued = requests_table(store)
    assert queued[["request_id", "submitted_by", "client", "state"]].values.tolist() == [
        [1, "engineer (passphrase)", "unknown client", "queued"]
    ]
    assert app.dataframe[0].value["state"].tolist() == ["queued"]

    checked(app.button(key="submit_request").click().run())
    assert any("already queued as request 1 (queued)" in info.value for info in app.info)
    assert len(requests_table(store)) == 1


def test_a_request_over_the_plant_s_limits_names_the_field_and_queues_nothing(store, tmp_path, monkeypatch):
    config = tmp_path / "gluelab.toml"
    config.write_text("[requests]\nmax_seeds = 1\n")
    monkeypatch.setenv("GLUELAB_CONFIG", str(config))
    app = sign_in(runs_page(store, WITH_PASSPHRASE, monkeypatch))
    app.number_input(key="submit_seeds").set_value(2)
    checked(app.button(key="submit_request").click().run())
    assert app.error[0].value.startswith("Not queued:")
    assert "- seeds: 2 is more than the limit of 1 (max_seeds in the config)" in app.error[0].value
    assert requests_table(store).empty


def test_a_submit_and_a_cancel_forged_in_a_viewer_session_are_refused_and_logged(store, monkeypatch):
    """The form's widget events arrive from a session that is not (or no longer) an engineer's: the handlers
    check the role themselves, so nothing is queued or cancelled, and both attempts are logged."""
    submit(tiny_grid(seeds=2), "a@plant.example", "10.0.0.7", store)
    app = sign_in(runs_page(store, WITH_PASSPHRASE, monkeypatch))
    app.multiselect(key="submit_models").set_value(["legacy"])
    del app.session_state[roles.SESSION_KEY]  # the role is gone; the widgets' events still reach their handlers
    checked(app.button(key="submit_request").click().run())
    assert "Refused: only engineers may submit evaluations" in app.error[0].value
    assert requests_table(store)["request_id"].tolist() == [1]
    assert not has_form(app)

    app = sign_in(runs_page(store, WITH_PASSPHRASE, monkeypatch))
    cancel = app.button(key="cancel_1")
    del app.session_state[roles.SESSION_KEY]
    checked(cancel.click().run())
    assert "Refused: only engineers may cancel requests" in app.error[0].value
    assert requests_table(store)["state"].tolist() == ["queued"]
    lines = refused(store)
    assert len(lines) == 2
    assert lines[0].endswith("refused submit of part1 · legacy · 1 seed · baseline · cpu from unknown client")
    assert lines[1].endswith("refused cancel of request 1 from unknown client")


def test_an_engineer_cancels_a_queued_request(store, monkeypatch):
    submit(tiny_grid(), "a@plant.example", "10.0.0.7", store)
    app = sign_in(runs_page(store, WITH_PASSPHRASE, monkeypatch))
    checked(app.button(key="cancel_1").click().run())
    assert app.success[0].value == "Request 1 cancelled."
    row = requests_table(store).iloc[0]
    assert row["state"] == "cancelled" and row["cancel_requested_by"] == "engineer (passphrase)"
    assert not [button for button in app.button if button.key == "cancel_1"]  # an ended request has no button


def test_with_an_identity_provider_only_listed_signed_in_users_are_engineers(store, monkeypatch):
    auth = {
        "auth": {
            "redirect_uri": "http://localhost:8501/oauth2callback",
            "cookie_secret": "not a real secret",
            "client_id": "gluelab",
            "client_secret": "not a real secret",
            "server_metadata_url": "https://login.plant.example/.well-known/openid-configuration",
        },
        "engineers": {"emails": ["A@plant.example"], "passphrase_hash": HASHED},  # [auth] wins over the hash
    }
    app = runs_page(store, auth, monkeypatch, user={"is_logged_in": False})
    assert not has_form(app)
    if importlib.util.find_spec("authlib") is None:  # Streamlit's sign-in needs it: the page says how to get it
        assert app.error[0].value == roles.AUTHLIB_MISSING
    else:
        assert app.button(key="engineer_login")
    app = runs_page(store, auth, monkeypatch, user={"is_logged_in": True, "email": "b@plant.example"})
    assert not has_form(app) and "not among this dashboard's engineers" in app.warning[0].value
    app = runs_page(store, auth, monkeypatch, user={"is_logged_in": True, "email": "a@plant.example"})
    assert has_form(app)
    checked(app.button(key="submit_request").click().run())
    assert requests_table(store)["submitted_by"].tolist() == ["a@plant.example"]


def test_a_running_request_cancelled_by_an_engineer_shows_cancelling_until_its_worker_stops_it(store, monkeypatch):
    submit(tiny_grid(), "a@plant.example", "10.0.0.7", store)
    start_request(1, "plant-pc:4242", store)  # as the worker does when it takes the request
    app = sign_in(runs_page(store, WITH_PASSPHRASE, monkeypatch))
    checked(app.button(key="cancel_1").click().run())
    assert "Request 1 is cancelling: its worker stops the running job." in [info.value for info in app.info]
    assert app.dataframe[0].value["state"].tolist() == ["cancelling"]
    assert app.button(key="cancel_1").disabled
    row = requests_table(store).iloc[0]
    assert row["state"] == "running" and row["cancel_requested_by"] == "engineer (passphrase)"
