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


# Every Live name the SDKs' docs, Google's samples and popular Live clients use by default, with the capabilities
# of Google's model pages: (family, response modalities, tools, thinks by default, affective dialog, proactive audio)
_HALF = ("half-cascade", {"TEXT", "AUDIO"}, {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"},
         False, False, False)
_NATIVE_25 = ("native-audio", {"AUDIO"}, {"functionDeclarations", "googleSearch"}, False, True, True)
LIVE_NAMES = {
    "gemini-2.0-flash-live-001": _HALF,  # the seed's half-cascade example
    "gemini-live-2.5-flash-preview": _HALF,  # SDK 3.6.1 live.py docstring
    "gemini-2.0-flash-live-preview-04-09": _HALF,  # SDK 3.6.1 live.py docstring, Vertex
    "gemini-2.5-flash-preview-native-audio-dialog": _NATIVE_25,  # the seed's default
    "gemini-2.5-flash-exp-native-audio-thinking-dialog": (
        "native-audio", {"AUDIO"}, {"googleSearch"}, True, True, True),  # the seed's tool table
    "gemini-2.5-flash-native-audio-preview-09-2025": _NATIVE_25,  # Google's Live guide
    "gemini-2.5-flash-native-audio-preview-12-2025": _NATIVE_25,  # pipecat, LiveKit Agents, cookbook native audio
    "gemini-2.5-flash-native-audio-latest": _NATIVE_25,  # cookbook websockets/Get_started_LiveAPI.py
    "gemini-live-2.5-flash-native-audio": _NATIVE_25,  # Vertex GA; LiveKit's and pipecat's Vertex default
    "gemini-live-2.5-flash-preview-native-audio-09-2025": _NATIVE_25,  # Vertex preview
    # 3.x: function calling and search, no code execution or URL context; no affective dialog
    "gemini-3.1-flash-live-preview": (  # SDK integration tests, cookbook Get_started_LiveAPI; no proactive audio yet
        "native-audio", {"AUDIO"}, {"functionDeclarations", "googleSearch"}, False, False, False),
    "gemini-3.8-live": (  # Google's default Live model; proactive audio always on
        "native-audio", {"AUDIO"}, {"functionDeclarations", "googleSearch"}, False, False, True),
    "gemini-3.8-live-extended-thinking": (  # thinks before it speaks
        "native-audio", {"AUDIO"}, {"functionDeclarations", "googleSearch"}, True, False, True),
}


@pytest.mark.parametrize("name", sorted(LIVE_NAMES))
def test_every_default_live_name_resolves_with_the_documented_capabilities(name: str) -> None:
    entry = ModelRegistry().resolve(f"models/{name}")
    family, modalities, tools, thinking, affective, proactive = LIVE_NAMES[name]
    assert (entry.name, entry.family, entry.response_modalities, entry.tools) == (name, family, modalities, tools)
    assert (entry.thinking, entry.affective_dialog, entry.proactive_audio) == (thinking, affective, proactive)


def test_a_file_sets_the_native_audio_features(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."mine"]\nfamily = "native-audio"\nresponse_modalities = ["AUDIO"]\n'
                    'affective_dialog = false\n'
                    '[models."half"]\nfamily = "half-cascade"\n'
                    '[models."gemini-3.8-live"]\nllm = "emulator"\n')
    registry = ModelRegistry().merged(path)
    mine = registry.resolve("mine")
    assert not mine.affective_dialog and mine.proactive_audio
    half = registry.resolve("half")
    assert not half.affective_dialog and not half.proactive_audio
    kept = registry.resolve("gemini-3.8-live")
    assert kept.llm == EMULATOR and not kept.affective_dialog and kept.proactive_audio
