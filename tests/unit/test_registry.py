from __future__ import annotations

from pathlib import Path

import pytest

from localive.models.registry import EMULATOR, QWEN_05B, ModelRegistry, RegistryError
from localive.protocol.errors import NotFound, close_for


def test_seed_models_are_served_with_or_without_prefix() -> None:
    registry = ModelRegistry()
    for name in ("gemini-2.5-flash-preview-native-audio-dialog", "gemini-2.5-flash-exp-native-audio-thinking-dialog",
                 "gemini-2.0-flash-live-001"):
        assert registry.resolve(name) is registry.resolve(f"models/{name}")


def test_capabilities_follow_the_seed_tool_table() -> None:
    registry = ModelRegistry()
    assert registry.resolve("gemini-2.0-flash-live-001").tools == {
        "googleSearch", "functionDeclarations", "codeExecution", "urlContext"}
    assert registry.resolve("gemini-2.5-flash-preview-native-audio-dialog").tools == {
        "googleSearch", "functionDeclarations"}
    thinking = registry.resolve("gemini-2.5-flash-exp-native-audio-thinking-dialog")
    assert thinking.tools == {"googleSearch"} and thinking.thinking


def test_unknown_model_reads_like_gemini() -> None:
    with pytest.raises(NotFound) as info:
        ModelRegistry().resolve("models/gemini-9", "v1alpha")
    close = close_for(info.value)
    assert close.code == 1008
    assert close.reason.startswith("models/gemini-9 is not found for API version v1alpha, or is not supported")
    assert len(close.reason.encode()) <= 123


def test_a_file_adds_and_overrides_entries(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."my-model"]\nllm = "emulator"\nresponse_modalities = ["TEXT"]\n'
                    '[models."gemini-2.0-flash-live-001"]\ntools = ["googleSearch"]\n')
    registry = ModelRegistry().merged(path)
    mine = registry.resolve("my-model")
    assert mine.llm == EMULATOR and mine.response_modalities == {"TEXT"}
    overridden = registry.resolve("gemini-2.0-flash-live-001")
    assert overridden.tools == {"googleSearch"} and overridden.llm == QWEN_05B


@pytest.mark.parametrize("text", ['[models."x"]\nfamily = "giant"\n', '[models."x"]\ncolour = 1\n',
                                  '[models."x"]\nresponse_modalities = ["SMELL"]\n', "not toml ["])
def test_bad_registry_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(RegistryError):
        ModelRegistry().merged(path)


def test_with_llm_routes_every_name_to_one_backend() -> None:
    assert ModelRegistry().with_llm(EMULATOR).llm_backends() == {EMULATOR}
