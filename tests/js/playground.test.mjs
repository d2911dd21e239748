// Unit tests of the playground's pure modules (setup builder, PCM/base64, raw log, demo tools, URLs), on Node.
import assert from "node:assert/strict";
import { test } from "node:test";

import { answerCall, DEMO_FUNCTIONS } from "../../src/localive/playground/demo_tools.js";
import { LIVE_PATH, liveUrl } from "../../src/localive/playground/live.js";
import { fromBase64, pcm16ToFloat32, rateOf, toBase64 } from "../../src/localive/playground/pcm.js";
import { RawLog, stripMedia } from "../../src/localive/playground/rawlog.js";
import { buildSetup } from "../../src/localive/playground/setup.js";

const FORM = {
  model: "gemini-live-2.5-flash-preview", modality: "AUDIO", voice: "Kore", systemInstruction: "  Be brief.  ",
  pushToTalk: false, startSensitivity: "START_SENSITIVITY_LOW", endSensitivity: "END_SENSITIVITY_UNSPECIFIED",
  prefixPaddingMs: 20, silenceDurationMs: NaN, inputTranscription: true, outputTranscription: true,
  demoFunctions: true, codeExecution: true, googleSearch: false, mediaResolution: "",
};

test("the form becomes the setup message the SDKs would send", () => {
  const { setup } = buildSetup(FORM);
  assert.deepEqual(setup, {
    model: "models/gemini-live-2.5-flash-preview",
    generationConfig: {
      responseModalities: ["AUDIO"],
      speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: "Kore" } } },
    },
    systemInstruction: { parts: [{ text: "Be brief." }] },
    realtimeInputConfig: { automaticActivityDetection: { startOfSpeechSensitivity: "START_SENSITIVITY_LOW", prefixPaddingMs: 20 } },
    inputAudioTranscription: {},
    outputAudioTranscription: {},
    tools: [{ functionDeclarations: DEMO_FUNCTIONS.map((f) => f.declaration) }, { codeExecution: {} }],
  });
});

test("push-to-talk turns automatic activity detection off; TEXT has no voice", () => {
  const { setup } = buildSetup({ ...FORM, pushToTalk: true, modality: "TEXT", demoFunctions: false, codeExecution: false,
    googleSearch: true, mediaResolution: "MEDIA_RESOLUTION_LOW" });
  assert.deepEqual(setup.realtimeInputConfig, { automaticActivityDetection: { disabled: true } });
  assert.deepEqual(setup.generationConfig, { responseModalities: ["TEXT"], mediaResolution: "MEDIA_RESOLUTION_LOW" });
  assert.equal(setup.outputAudioTranscription, undefined);
  assert.deepEqual(setup.tools, [{ googleSearch: {} }]);
});

test("16-bit PCM survives base64 both ways", () => {
  const pcm = new Int16Array([0, 1, -1, 32767, -32768, 1234]);
  const back = fromBase64(toBase64(pcm.buffer));
  assert.deepEqual(new Int16Array(back.buffer), pcm);
  const floats = pcm16ToFloat32(back);
  assert.equal(floats.length, 6);
  assert.equal(floats[4], -1);
  assert.ok(Math.abs(floats[3] - 32767 / 32768) < 1e-9);
  const big = new Uint8Array(100000).map((_, i) => i % 251);
  assert.deepEqual(fromBase64(toBase64(big)), big); // chunked encoding of large buffers
  assert.equal(rateOf("audio/pcm;rate=16000"), 16000);
  assert.equal(rateOf("audio/pcm"), 24000);
});

test("the raw log is JSONL and strips media payloads once full", () => {
  const log = new RawLog(400, 3);
  log.add("send", { setup: { model: "m" } }, 0);
  log.add("recv", { serverContent: { modelTurn: { parts: [{ inlineData: { mimeType: "audio/pcm", data: "A".repeat(500) } }] } } }, 1);
  log.add("event", { close: { code: 1000 } }, 2);
  log.add("event", { ignored: true }, 3);
  const lines = log.toJSONL().trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.equal(log.omitted, 1);
  assert.deepEqual(lines[0], { time: "1970-01-01T00:00:00.000Z", dir: "send", message: { setup: { model: "m" } } });
  assert.equal(lines[1].message.serverContent.modelTurn.parts[0].inlineData.data, "<500 base64 chars omitted>");
  assert.deepEqual(stripMedia({ text: "data", data: "x" }), { text: "data", data: "x" }); // only blobs
});

test("demo functions answer calls by id; unknown names answer with an error", () => {
  assert.deepEqual(answerCall({ id: "c1", name: "get_weather", args: { city: "Oslo" } }),
    { id: "c1", name: "get_weather", response: { city: "Oslo", temperature_c: 21, conditions: "sunny" } });
  assert.deepEqual(answerCall({ id: "c2", name: "nope" }).response, { error: "unknown function nope" });
});

test("the page connects to its own server, with a token on the Constrained endpoint", () => {
  assert.equal(liveUrl({ protocol: "http:", host: "127.0.0.1:8766" }), `ws://127.0.0.1:8766${LIVE_PATH}`);
  assert.equal(liveUrl({ protocol: "https:", host: "h:1" }, "auth_tokens/a+b"),
    `wss://h:1${LIVE_PATH}Constrained?access_token=auth_tokens%2Fa%2Bb`);
});
