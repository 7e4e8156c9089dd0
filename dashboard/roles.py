"""Who may do what on the dashboard: everyone views; engineers submit and cancel evaluation requests.

How someone becomes an engineer depends on the dashboard's secrets (`.streamlit/secrets.toml`, or the file given
to `gluelab dashboard --secrets`):

- an `[auth]` section: Streamlit's OpenID Connect sign-in (`st.login()`); a signed-in user is an engineer, or only
  those listed in `[engineers] emails = [...]` when that list is given;
- else `[engineers] passphrase_hash` (written by `gluelab engineer set-passphrase`): the engineer sign-in box takes
  the passphrase, and the session keeps the role;
- else nobody: the dashboard is read-only.

Every refused attempt (a wrong passphrase, a submit or cancel without the role) is appended as a line to
`<store>.logs/refused.log` and logged to the `gluelab` logger, with the UTC time and the client's address.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import os
import re
import secrets
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import streamlit as st

LOG = logging.getLogger("gluelab.dashboard")
PROJECT = Path(__file__).resolve().parent.parent
SECRETS_FILE = PROJECT / ".streamlit" / "secrets.toml"
README_SECTION = "README.md, section “Plant set-up”"

MIN_PASSPHRASE = 8
# scrypt cost: 2**14 x 8 x 1 takes ~16 MB and a few tens of milliseconds per try
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES = 16
PASSPHRASE_ENGINEER = "engineer (passphrase)"
UNKNOWN_CLIENT = "unknown client"
REFUSED_PAUSE_SECONDS = 0.5  # after a wrong passphrase, so guessing is slow

Mode = Literal["identity provider", "passphrase", "read-only"]


# ---------------------------------------------------------------------------------------------------------------
# Passphrases


def hash_passphrase(passphrase: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt_hex$hash_hex` of `passphrase`, with a fresh random 16-byte salt unless one is given."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(passphrase.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_passphrase(passphrase: str, stored: str) -> bool:
    """Whether `passphrase` is the one `stored` (a `hash_passphrase` result) was made from; False for a malformed
    hash."""
    try:
        scheme, n, r, p, salt_hex, hash_hex = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(hash_hex)
        digest = hashlib.scrypt(
            passphrase.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


def check_new_passphrase(passphrase: str) -> None:
    """Refuse (ValueError) a passphrase shorter than `MIN_PASSPHRASE` characters."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise ValueError(f"the passphrase must be at least {MIN_PASSPHRASE} characters (got {len(passphrase)})")


SECTION = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$")
HASH_LINE = re.compile(r"^\s*passphrase_hash\s*=")


def with_passphrase_hash(text: str, stored: str) -> str:
    """`text` (a secrets.toml) with `[engineers] passphrase_hash` set to `stored`; every other line is kept."""
    line = f'passphrase_hash = "{stored}"'
    lines = text.splitlines()
    header = next((i for i, row in enumerate(lines) if (m := SECTION.match(row)) and m[1] == "engineers"), None)
    if header is None:
        kept = text if not text or text.endswith("\n") else text + "\n"
        return kept + ("\n" if kept else "") + f"[engineers]\n{line}\n"
    end = next((i for i in range(header + 1, len(lines)) if SECTION.match(lines[i])), len(lines))
    existing = [i for i in range(header + 1, end) if HASH_LINE.match(lines[i])]
    if existing:
        lines[existing[0]] = line
        lines = [row for i, row in enumerate(lines) if i not in existing[1:]]
    else:
        lines.insert(header + 1, line)
    return "\n".join(lines) + "\n"


def set_passphrase(path: Path, passphrase: str) -> None:
    """Write the passphrase's hash into the secrets file at `path` (created with mode 0600), keeping the rest."""
    check_new_passphrase(passphrase)
    text = path.read_text() if path.exists() else ""
    updated = with_passphrase_hash(text, hash_passphrase(passphrase))
    try:
        tomllib.loads(updated)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML, so it was left as it is ({error})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(updated)
    os.replace(temporary, path)  # the file keeps mode 0600, whatever the old one had


# ---------------------------------------------------------------------------------------------------------------
# Roles


@dataclass(frozen=True)
class EngineerSession:
    """Kept in the session once the passphrase was given; a widget value from a browser can never be one."""

    name: str
    since: str


SESSION_KEY = "engineer_session"


def mode(secrets_: Mapping[str, Any]) -> Mode:
    """How engineers sign in with these secrets."""
    if secrets_.get("auth"):
        return "identity provider"
    if (secrets_.get("engineers") or {}).get("passphrase_hash"):
        return "passphrase"
    return "read-only"


def engineer_name(secrets_: Mapping[str, Any], user: Mapping[str, Any], session: Mapping[str, Any]) -> str | None:
    """The engineer this session acts as (an email, or `PASSPHRASE_ENGINEER`), or None for a viewer."""
    how = mode(secrets_)
    if how == "identity provider":
        if not user.get("is_logged_in"):
            return None
        email = str(user.get("email") or "")
        allowed = [str(e).lower() for e in (secrets_.get("engineers") or {}).get("emails") or []]
        if allowed and email.lower() not in allowed:
            return None
        return email or str(user.get("name") or "signed-in user")
    if how == "passphrase":
        held = session.get(SESSION_KEY)
        return held.name if isinstance(held, EngineerSession) else None
    return None


def refused_log(store: Path | str) -> Path:
    return Path(f"{store}.logs") / "refused.log"


def refuse(store: Path | str, client: str, attempted: str) -> str:
    """Record a refused attempt in `<store>.logs/refused.log` and the `gluelab` logger; returns the line."""
    line = f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} refused {attempted} from {client}"
    LOG.warning("%s", line)
    log = refused_log(store)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as file:
        file.write(line + "\n")
    return line


# ---------------------------------------------------------------------------------------------------------------
# This session, through Streamlit


def current_secrets() -> dict[str, Any]:
    """The dashboard's secrets; empty when there is no secrets file."""
    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # Streamlit's "no secrets found"
        return {}


def client_address() -> str:
    """The browser's address as Streamlit saw the connection, or `UNKNOWN_CLIENT` (e.g. on localhost)."""
    try:
        address = st.context.ip_address
    except AttributeError:
        return UNKNOWN_CLIENT
    return address if isinstance(address, str) and address else UNKNOWN_CLIENT


def current_user() -> Mapping[str, Any]:
    try:
        return st.user.to_dict()
    except (AttributeError, KeyError):
        return {}


def engineer() -> str | None:
    """The engineer this session acts as, or None: checked on every call, so handlers check it again."""
    return engineer_name(current_secrets(), current_user(), st.session_state.to_dict())


def sign_in_with_passphrase(store: str, passphrase: str) -> bool:
    """Give this session the engineer role when `passphrase` is right; a wrong one is refused and logged."""
    stored = (current_secrets().get("engineers") or {}).get("passphrase_hash", "")
    if stored and verify_passphrase(passphrase, stored):
        st.session_state[SESSION_KEY] = EngineerSession(
            PASSPHRASE_ENGINEER, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        return True
    refuse(store, client_address(), "engineer sign-in (wrong passphrase)")
    time.sleep(REFUSED_PAUSE_SECONDS)
    return False


def sign_out() -> None:
    st.session_state.pop(SESSION_KEY, None)


AUTHLIB_MISSING = (
    "The dashboard's secrets have an `[auth]` section, but Streamlit's sign-in needs Authlib, which is not "
    "installed: `pip install 'streamlit[auth]'` in gluelab's environment, then restart `gluelab dashboard`."
)
HOW_TO_ENABLE = (
    "This dashboard is read-only: nobody can submit or cancel evaluations from it. To let engineers do so, "
    "set a passphrase on the dashboard's machine with `gluelab engineer set-passphrase` (then restart "
    "`gluelab dashboard`), or add an `[auth]` section for your identity provider to the dashboard's secrets. "
    f"See {README_SECTION}."
)


def identity_provider(secrets_: Mapping[str, Any]) -> str | None:
    """The provider to pass to `st.login`: None for a single `[auth]` provider, else the one sub-table named."""
    auth = secrets_.get("auth") or {}
    if "client_id" in auth:
        return None
    named = [key for key, value in auth.items() if isinstance(value, Mapping)]
    return named[0] if len(named) == 1 else None


def sign_in_box(store: str) -> None:
    """What a session sees about its role: how to enable engineers, the sign-in, or who it is signed in as."""
    secrets_ = current_secrets()
    how = mode(secrets_)
    name = engineer()
    if how == "read-only":
        st.info(HOW_TO_ENABLE, icon=":material/lock:")
        return
    if name is not None:
        left, right = st.columns([4, 1])
        left.caption(f"Signed in as {name}: you may submit and cancel evaluations.")
        if how == "identity provider":
            right.button("Sign out", key="engineer_sign_out", on_click=st.logout)
        else:
            right.button("Sign out", key="engineer_sign_out", on_click=sign_out)
        return
    if how == "identity provider":
        user = current_user()
        if user.get("is_logged_in"):
            st.warning(
                f"Signed in as {user.get('email') or user.get('name')}, who is not among this dashboard's engineers "
                "([engineers] emails in its secrets): you may view, not submit or cancel."
            )
            st.button("Sign out", key="engineer_sign_out", on_click=st.logout)
            return
        st.info("Viewing only. Engineers sign in to submit and cancel evaluations.", icon=":material/lock:")
        if importlib.util.find_spec("authlib") is None:
            st.error(AUTHLIB_MISSING)
            return
        provider = identity_provider(secrets_)
        st.button("Engineer sign-in", key="engineer_login", on_click=st.login, args=(provider,) if provider else ())
        return
    st.info("Viewing only. Engineers sign in with the passphrase to submit and cancel evaluations.")
    with st.form("engineer_sign_in", clear_on_submit=True):
        passphrase = st.text_input("Engineer passphrase", type="password", key="engineer_passphrase")
        submitted = st.form_submit_button("Sign in", key="engineer_sign_in_submit")
    if submitted:
        if sign_in_with_passphrase(store, passphrase):
            st.rerun()
        st.error("Wrong passphrase: refused, and the attempt was logged.")
