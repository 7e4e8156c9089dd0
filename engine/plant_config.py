"""The plant's settings file, `gluelab.toml` (or the file `$GLUELAB_CONFIG` names): one table per concern.

Each table is read into a frozen dataclass whose defaults apply where the file, the table or a key is missing.
A key the dataclass does not know, or a value of another type than its default's, is refused naming the file, the
table and the key, so a typo never silently leaves a plant on a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

CONFIG_ENV = "GLUELAB_CONFIG"
CONFIG_FILE = Path(__file__).resolve().parent.parent / "gluelab.toml"  # beside pyproject.toml

T = TypeVar("T")


def config_path() -> Path:
    """`$GLUELAB_CONFIG`, else `gluelab.toml` in the project folder."""
    return Path(os.environ.get(CONFIG_ENV) or CONFIG_FILE)


def read_table(section: str, kind: type[T], path: Path | None = None) -> T:
    """The `[section]` table of the config file as `kind` (a dataclass with a default for every field).

    Whole numbers are accepted where a default is a float; booleans only where it is a boolean. Raises
    ValueError naming the file, the table and the key for invalid TOML, unknown keys and values of the wrong type.
    """
    path = path or config_path()
    if not path.exists():
        return kind()
    try:
        table = tomllib.loads(path.read_text()).get(section, {})
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    defaults = {field.name: field.default for field in fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise ValueError(
            f"{path}: unknown key(s) {', '.join(unknown)} in [{section}]; known: {', '.join(sorted(defaults))}"
        )
    for key, value in table.items():
        if not _same_kind(value, defaults[key]):
            raise ValueError(f"{path}: [{section}] {key} must be {_kind_in_words(defaults[key])} (got {value!r})")
    return kind(**table)


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _kind_in_words(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    return f"a {type(default).__name__}"
