"""Where localive keeps its files. Overridable with LOCALIVE_HOME (data) and LOCALIVE_CACHE (models)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    env = os.environ.get("LOCALIVE_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("localive"))


def default_cache_dir() -> Path:
    env = os.environ.get("LOCALIVE_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("localive"))
