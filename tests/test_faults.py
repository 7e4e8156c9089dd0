"""Faults that must not leak: a damaged or foreign store, and a dashboard open to the network or the internet.

Every store fault must end in one line naming the file and the problem, never a traceback, and must
leave the store's bytes exactly as they were.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from engine.cli import main as gluelab
from tests.conftest import file_digest

PROJECT = Path(__file__).resolve().parent.parent
APP = PROJECT / "dashboard" / "app.py"


@pytest.fixture(scope="module")
def published_store(tmp_path_factory) -> Path:
    """A real store holding the study's published figures (over a megabyte of DuckDB blocks)."""
    store = tmp_path_factory.mktemp("faults") / "published.duckdb"
    assert gluelab(["load-published", "--store", str(store)]) == 0
    return store


def _folder(store: Path, good: Path) -> str:
    store.mkdir()
    return "is a folder, not a gluelab store"


def _text_file(store: Path, good: Path) -> str:
    store.write_text("part,model\npart1,padim\n")
    return "is not a gluelab store"


def _truncated(store: Path, good: Path) -> str:
    data = good.read_bytes()
    store.write_bytes(data[: len(data) // 2])
    return r"is damaged \(truncated\?\): restore it from a copy"


def _foreign_database(store: Path, good: Path) -> str:
    con = duckdb.connect(str(store))
    con.execute("CREATE TABLE invoices (number INTEGER, amount DOUBLE)")
    con.close()
    return "is not a gluelab store"


FAULTS: dict[str, Callable[[Path, Path], str]] = {
    "folder": _folder,
    "text file": _text_file,
    "truncated": _truncated,
    "foreign database": _foreign_database,
}
COMMANDS = {
    "read": ["results", "--part", "part1"],
    "write": ["load-published"],
    "import": ["import", "--layout", "elpv", "--part", "cells", "--limit", "8"],
}


def tree_digest(path: Path) -> object:
    """The bytes of a store file, or the names and bytes in a store path that is a folder."""
    if path.is_dir():
        return sorted((p.name, file_digest(p)) for p in path.rglob("*"))
    return file_digest(path)


def one_line_error(capsys, command: list[str], store: Path) -> str:
    """Run gluelab, check it failed with exactly one line on stderr, and return that line."""
    code = gluelab([*command, "--store", str(store)])
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    return captured.err


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_store_fault_is_one_line_naming_the_file_and_leaves_its_bytes(
    fault, command, published_store, tmp_path, capsys
):

    store = tmp_path / "store.duckdb"
    reason = FAULTS[fault](store, published_store)
    before = tree_digest(store)

    error = one_line_error(capsys, COMMANDS[command], store)

    assert str(store) in error and re.search(reason, error), error
    assert tree_digest(store) == before
    assert not Path(f"{store}.wal").exists()


@pytest.fixture
def unprivileged_folder() -> Iterator[Path]:
    """A folder `nobody` can read but not write (pytest's own temp folders are closed to other users)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run gluelab as an unprivileged user")
    folder = Path(tempfile.mkdtemp(prefix="gluelab-readonly-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def load_published_as_nobody(store: Path, home: Path) -> subprocess.CompletedProcess:
    """`gluelab load-published` as user nobody: root ignores file permissions, so it cannot show them."""
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "engine.cli"]
        + ["load-published", "--store", str(store)],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "GLUELAB_HOME": str(home / "home"), "HOME": str(home)},
        timeout=120,
    )


def test_a_store_that_cannot_be_written_is_one_line_and_unchanged(unprivileged_folder, published_store):
    store = unprivileged_folder / "store.duckdb"
    shutil.copy(published_store, store)
    store.chmod(0o644)  # owned by root: readable by everyone, writable by root only
    before = file_digest(store)

    result = load_published_as_nobody(store, unprivileged_folder)

    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        f"gluelab load-published: {store} cannot be written (permission denied or read-only disk); use a writable copy"
    ]
    assert file_digest(store) == before


def test_a_store_in_a_folder_that_cannot_be_created_is_one_line(unprivileged_folder):
    store = unprivileged_folder / "new" / "store.duckdb"
    result = load_published_as_nobody(store, unprivileged_folder)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1 and str(store) in result.stderr, result.stderr
    assert not (unprivileged_folder / "new").exists()


@pytest.mark.parametrize("fault", FAULTS)
def test_every_dashboard_page_shows_a_store_fault_as_a_message_without_a_traceback(
    fault, published_store, tmp_path, monkeypatch
):
    from tests.test_dashboard import PAGES

    store = tmp_path / "store.duckdb"
    reason = FAULTS[fault](store, published_store)
    before = tree_digest(store)
    monkeypatch.setenv("GLUELAB_STORE", str(store))
    for page in PAGES:
        app = AppTest.from_file(str(APP), default_timeout=60)
        app.switch_page(f"views/{page}")
        app.run()
        assert not app.exception, (page, [e.value for e in app.exception])
        shown = " ".join(element.value for element in app.error)
        assert "The results store cannot be used" in shown and str(store) in shown, (page, shown)

        assert re.search(reason, shown), (page, shown)
    assert tree_digest(store) == before


def test_the_dashboard_refuses_to_start_on_a_damaged_store(published_store, tmp_path):
    """Checked before Streamlit starts, so the command fails instead of serving pages that all fail."""
    store = tmp_path / "store.duckdb"
    _truncated(store, published_store)
    before = file_digest(store)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", "dashboard", "--port", "8599", "--store", str(store)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as served:
        pytest.fail(f"the dashboard started on a damaged store: {served.stdout}")
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines() == [
        f"gluelab dashboard: {store} is damaged (truncated?): restore it from a copy"
    ]
    assert file_digest(store) == before


def test_the_dashboard_hides_error_details_from_visitors():
    """Unexpected errors show visitors a notice; Streamlit logs the traceback on the server."""
    import tomllib

    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["showErrorDetails"] == "none"


# --- where the dashboard listens, and what it asks the network ---------------------------------------------------


def _no_network_namespace() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


def _listening(pid: int, port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp) of the sockets listening on `port` in `pid`'s network namespace."""
    addresses = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                addresses.append(address)
    return addresses


def serve_without_network(store: Path, port: int, *extra: str) -> tuple[list[str], str]:
    """Run `gluelab dashboard` in a network namespace holding only loopback, until it has printed its URL.

    Returns the listening addresses and everything it printed. Without routes any request for the
    machine's external IP fails at once, and Streamlit says so in its log.
    """
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, "-m"]
    command += ["engine.cli", "dashboard", "--port", str(port), "--store", str(store), *extra]
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(server.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    try:
        while not any("URL" in line for line in output) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.3)
        time.sleep(2)  # anything Streamlit does right after its banner
        addresses = _listening(server.pid, port)
    finally:
        server.terminate()
        server.wait(timeout=30)
        reader.join(timeout=5)
    return addresses, "".join(output)


@pytest.mark.skipif(not _no_network_namespace(), reason="needs root and `unshare -n` for a namespace without network")
def test_the_dashboard_listens_on_loopback_only_and_makes_no_outbound_request(published_store):
    addresses, printed = serve_without_network(published_store, 8611)
    assert addresses == ["0100007F"], printed  # 127.0.0.1, and nothing else
    assert "http://localhost:8611" in printed and "this machine only" in printed
    assert "external IP" not in printed and "External URL" not in printed and "Network URL" not in printed, printed


@pytest.mark.skipif(not _no_network_namespace(), reason="needs root and `unshare -n` for a namespace without network")
def test_an_address_opens_the_dashboard_to_the_network_still_without_an_external_ip_lookup(published_store):
    addresses, printed = serve_without_network(published_store, 8612, "--address", "0.0.0.0")
    assert addresses == ["00000000"], printed
    assert "reachable from other machines" in printed
    assert "external IP" not in printed and "External URL" not in printed, printed
