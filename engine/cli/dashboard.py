"""The dashboard and who may act on it: `gluelab dashboard` serves it on a store, `gluelab engineer
set-passphrase` sets the passphrase engineers sign in with."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from engine.cli.arguments import SECRETS_FILE, add_store

LOOPBACK = "127.0.0.1"
WILDCARDS = ("0.0.0.0", "::")
PROJECT = Path(__file__).resolve().parents[2]  # holds dashboard/ and .streamlit/config.toml


def add_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument(
        "--address",
        default=LOOPBACK,
        help=f"address to listen on (default {LOOPBACK}, this machine only; 0.0.0.0 for every interface)",
    )
    add_store(parser)
    parser.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help=f"secrets file to read instead of {SECRETS_FILE}: the engineers' passphrase hash or an [auth] section",
    )
    parser.set_defaults(run=dashboard)


def dashboard_command(project: Path, port: int, address: str, secrets: Path | None = None) -> list[str]:
    """The `streamlit run` command line: bound to `address`, printing a URL without any network look-up, reading
    its secrets from `secrets` when given (else `.streamlit/secrets.toml`)."""
    # A set browser.serverAddress is what Streamlit prints instead of asking checkip.amazonaws.com for the
    # machine's external IP (streamlit/web/bootstrap.py); on a wildcard address it names this host.
    shown = socket.gethostname() if address in WILDCARDS else address
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(project / "dashboard" / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--browser.serverAddress",
        "localhost" if address == LOOPBACK else shown,
        "--browser.gatherUsageStats",
        "false",
        *(["--secrets.files", str(secrets)] if secrets is not None else []),
    ]


def dashboard(args: argparse.Namespace) -> int:
    from store import read_store

    store = args.store.resolve()
    if store.exists():
        with read_store(store):  # a folder, a foreign or damaged file is refused here, in one line
            pass
    else:
        print(f"gluelab dashboard: no store at {store} yet; the dashboard will say how to create one.", file=sys.stderr)
    host = "localhost" if args.address == LOOPBACK else args.address
    reach = (
        "this machine only; --address 0.0.0.0 opens it to the network"
        if args.address == LOOPBACK
        else f"listening on {args.address}: reachable from other machines"
    )
    secrets = args.secrets.resolve() if args.secrets else None
    if secrets is not None and not secrets.is_file():
        raise FileNotFoundError(
            f"--secrets {secrets}: no such file (`gluelab engineer set-passphrase --secrets` writes one)"
        )
    print(f"gluelab dashboard: http://{host}:{args.port} ({reach}; reading {store}; Ctrl-C stops it)", flush=True)
    os.chdir(PROJECT)
    command = dashboard_command(PROJECT, args.port, args.address, secrets)
    os.execve(sys.executable, command, {**os.environ, "GLUELAB_STORE": str(store)})  # signals reach Streamlit itself


def add_engineer(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="engineer_command", required=True)
    set_passphrase = commands.add_parser(
        "set-passphrase",
        help="set the passphrase engineers sign in with (asked twice; read from stdin when it is not a terminal)",
    )
    set_passphrase.add_argument(
        "--secrets",
        type=Path,
        default=SECRETS_FILE,
        metavar="FILE",
        help=f"secrets file to write the [engineers] passphrase_hash into, keeping the rest (default {SECRETS_FILE})",
    )
    set_passphrase.set_defaults(run=engineer_set_passphrase)


def read_new_passphrase() -> str:
    """The new passphrase: typed twice without echo on a terminal, or the first line of stdin for scripts."""
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New engineer passphrase: ")
    if getpass.getpass("Once more: ") != first:
        raise ValueError("the two passphrases differ; nothing was written")
    return first


def engineer_set_passphrase(args: argparse.Namespace) -> int:
    from dashboard.roles import set_passphrase

    set_passphrase(args.secrets, read_new_passphrase())
    print(f"engineer passphrase set in {args.secrets} ([engineers] passphrase_hash); restart `gluelab dashboard`")
    return 0


PARSERS = {"dashboard": add_dashboard, "engineer": add_engineer}
