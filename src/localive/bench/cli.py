"""Placeholder wiring for `localive bench` (filled in by the benchmark harness)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=10)


def run(args: argparse.Namespace) -> int:
    raise SystemExit("localive bench: not implemented yet")
