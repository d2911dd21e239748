"""deploy/compose.yaml cannot run here (no Docker, no GPU), but its localive command line is localive's own:
it must parse with `localive serve`'s parser, so a renamed or removed flag breaks this test, not a deployment."""

from __future__ import annotations

from pathlib import Path

import yaml

from localive.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_compose_files_localive_command_is_a_valid_serve_command() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    first, second = compose["services"]["localive-1"], compose["services"]["localive-2"]
    assert second["command"] == first["command"] and second["volumes"] != first["volumes"]
    localive = first
    command = [c.replace("${PUBLIC_HOST:-localhost}", "localhost") for c in localive["command"]]
    args = build_parser().parse_args(command)
    assert args.llm_url == "http://vllm:8000/v1" and args.sessions_redis == "redis://redis:6379/0"
    assert args.host == "0.0.0.0" and args.drain_s < int(localive["stop_grace_period"].rstrip("s"))
    # nginx's upstreams are these two services' plain ports (the load-balanced test runs deploy/nginx.conf)
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"localive-1:{args.plain_port}" in nginx and f"localive-2:{args.plain_port}" in nginx
    # the LLM's key only ever comes from the environment
    assert "LOCALIVE_LLM_API_KEY" in localive["environment"]
    assert not any("key" in c.lower() and not c.startswith("--api-keys-file") and "/" not in c for c in command)


def test_the_image_prepares_only_what_it_installs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "localive models prepare whisper-base" in dockerfile  # no embedded LLM in this image
