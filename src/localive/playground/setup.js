// Build the BidiGenerateContent `setup` message from the playground's form values (pure: no DOM, no I/O).
import { DEMO_FUNCTIONS } from "./demo_tools.js";

export const SENSITIVITY = {
  start: ["START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH", "START_SENSITIVITY_LOW"],
  end: ["END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH", "END_SENSITIVITY_LOW"],
};

/**
 * @param {object} o form values: model, modality ("AUDIO" | "TEXT"), voice, systemInstruction,
 *   pushToTalk, startSensitivity, endSensitivity, prefixPaddingMs, silenceDurationMs,
 *   inputTranscription, outputTranscription, demoFunctions, codeExecution, googleSearch, mediaResolution
 * @returns {{setup: object}}
 */
export function buildSetup(o) {
  const model = o.model.startsWith("models/") ? o.model : `models/${o.model}`;
  const generationConfig = { responseModalities: [o.modality || "AUDIO"] };
  if (o.modality !== "TEXT" && o.voice) {
    generationConfig.speechConfig = { voiceConfig: { prebuiltVoiceConfig: { voiceName: o.voice } } };
  }
  if (o.mediaResolution) generationConfig.mediaResolution = o.mediaResolution;
  const setup = { model, generationConfig };
  if (o.systemInstruction && o.systemInstruction.trim()) {
    setup.systemInstruction = { parts: [{ text: o.systemInstruction.trim() }] };
  }
  const vad = {};
  if (o.pushToTalk) {
    vad.disabled = true;
  } else {
    if (o.startSensitivity && o.startSensitivity !== SENSITIVITY.start[0]) vad.startOfSpeechSensitivity = o.startSensitivity;
    if (o.endSensitivity && o.endSensitivity !== SENSITIVITY.end[0]) vad.endOfSpeechSensitivity = o.endSensitivity;
    if (Number.isFinite(o.prefixPaddingMs) && o.prefixPaddingMs > 0) vad.prefixPaddingMs = o.prefixPaddingMs;
    if (Number.isFinite(o.silenceDurationMs) && o.silenceDurationMs > 0) vad.silenceDurationMs = o.silenceDurationMs;
  }
  if (Object.keys(vad).length) setup.realtimeInputConfig = { automaticActivityDetection: vad };
  if (o.inputTranscription) setup.inputAudioTranscription = {};
  if (o.outputTranscription && o.modality !== "TEXT") setup.outputAudioTranscription = {};
  const tools = [];
  if (o.demoFunctions) tools.push({ functionDeclarations: DEMO_FUNCTIONS.map((f) => f.declaration) });
  if (o.codeExecution) tools.push({ codeExecution: {} });
  if (o.googleSearch) tools.push({ googleSearch: {} });
  if (tools.length) setup.tools = tools;
  return { setup };
}
