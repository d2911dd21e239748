"""A conversation an app sends back in `clientContent` (after a reconnect without resumption, or its own history),
turned into history entries: text, and the tool exchanges the model had — function calls and their responses,
code it ran and the output — in the form the session itself records them (session/history.py)."""

from __future__ import annotations

from localive.engines.llm.base import CalledFunction
from localive.protocol import messages as wire
from localive.protocol.errors import InvalidArgument, Unimplemented
from localive.session.history import Entry
from localive.session.tool_calls import response_text


def history_of(content: wire.Content, role: str, where: str) -> list[Entry]:
    """The entries for one turn's parts (images are taken out before: they are shown as video frames)."""
    entries: list[Entry] = []
    text: list[str] = []
    calls: list[CalledFunction] = []
    ids: list[str] = []

    def flush() -> None:
        if text or calls:
            entries.append(Entry(role, "\n\n".join(text), tuple(calls), tuple(ids)))
        text.clear()
        calls.clear()
        ids.clear()

    for part in content.parts:
        if part.thought:
            continue
        if part.text is not None:
            if calls:  # words after a call belong to the next model entry
                flush()
            text.append(part.text)
        elif part.audio_transcription is not None and part.inline_data is None:  # what was said, as text
            text.append(part.audio_transcription.text or "")
        elif part.function_call is not None:
            if role != "model":
                raise InvalidArgument(f"{where}: a functionCall part belongs to a 'model' turn.")
            calls.append(CalledFunction(part.function_call.name, dict(part.function_call.args or {})))
            ids.append(part.function_call.id or "")
        elif part.executable_code is not None:
            text.append(f"```python\n{part.executable_code.code}\n```")
        elif part.function_response is not None:
            flush()
            response = part.function_response
            entries.append(Entry("tool", response_text(response), name=response.name or "function"))
        elif part.code_execution_result is not None:
            flush()
            entries.append(Entry("tool", part.code_execution_result.output or "(no output)", name="code_execution"))
        else:
            kind = next((k for k, v in part.model_dump(by_alias=True).items() if v is not None), None)
            if kind is None:
                raise InvalidArgument(f"{where}: a part has no data (text, inlineData, …).")
            raise Unimplemented(f"{where}: '{kind}' parts are not supported yet by localive.")
    flush()
    return [e for e in entries if e.text or e.calls]
