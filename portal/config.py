"""The portal's configuration: a frozen object built from the environment.

Each setting is read by a small pure function so that tests can build a
Config from a plain dict. There are no default secrets: a setting that would
need one has no default and the portal refuses to start without it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Config:
    keys_manifest: Path
    data_dir: Path


def path_setting(env: Mapping[str, str], name: str, default: Path) -> Path:
    """An absolute path from ``env[name]``, or ``default`` when unset or empty."""
    value = env.get(name, "").strip()
    if not value:
        return default
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    return path


def from_env(env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    return Config(
        keys_manifest=path_setting(
            env, "PORTAL_KEYS_MANIFEST", PROJECT_ROOT / "keys" / "manifest.json"
        ),
        data_dir=path_setting(env, "PORTAL_DATA_DIR", PROJECT_ROOT / "instance" / "data"),
    )
