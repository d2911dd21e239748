// One spoken turn through the unmodified @google/genai SDK, configured only by the environment
// (GOOGLE_GEMINI_BASE_URL, NODE_EXTRA_CA_CERTS, GEMINI_API_KEY), with an audio answer.
//
// Usage: node audio_turn.mjs --pcm FILE [--model NAME] [--voice NAME] [--timeout-ms N]
//   FILE: raw 16 kHz 16-bit mono PCM (speech followed by silence, so the server's VAD ends the turn)
//
// Prints one JSON line: {"ok":true,"audioBytes":N,"mimeTypes":[...],"inputTranscript":"...",
//   "outputTranscript":"...","sawGenerationComplete":bool,"sawTurnComplete":bool} and exits 0,
//   or {"ok":false,"stage":...,"error":...} and exits 1 (2 on timeout).

import { readFileSync } from 'node:fs';
import { GoogleGenAI, Modality } from '@google/genai';
import { finish, guard } from './harness.mjs';

const args = { model: 'gemini-2.0-flash-live-001', voice: 'Kore', timeoutMs: 60000, pcm: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [name, value] = [argv[i], argv[i + 1]];
  if (name === '--pcm') args.pcm = value;
  else if (name === '--model') args.model = value;
  else if (name === '--voice') args.voice = value;
  else if (name === '--timeout-ms') args.timeoutMs = Number(value);
  else throw new Error(`unknown argument ${name}`);
}

guard(args.timeoutMs, 'no turn');

const summary = {
  ok: true, audioBytes: 0, mimeTypes: [], inputTranscript: '', outputTranscript: '',
  sawGenerationComplete: false, sawTurnComplete: false,
};
let resolveTurn;
const turnDone = new Promise((resolve) => { resolveTurn = resolve; });

const ai = new GoogleGenAI({});
const session = await ai.live.connect({
  model: args.model,
  config: {
    responseModalities: [Modality.AUDIO],
    speechConfig: { voiceConfig: { prebuiltVoiceConfig: { voiceName: args.voice } } },
    inputAudioTranscription: {},
    outputAudioTranscription: {},
  },
  callbacks: {
    onmessage: (msg) => {
      const content = msg.serverContent;
      for (const part of content?.modelTurn?.parts ?? []) {
        if (part.inlineData) {
          summary.audioBytes += Buffer.from(part.inlineData.data, 'base64').length;
          if (!summary.mimeTypes.includes(part.inlineData.mimeType)) summary.mimeTypes.push(part.inlineData.mimeType);
        }
      }
      if (content?.inputTranscription?.text) summary.inputTranscript += content.inputTranscription.text;
      if (content?.outputTranscription?.text) summary.outputTranscript += content.outputTranscription.text;
      if (content?.generationComplete) summary.sawGenerationComplete = true;
      if (content?.turnComplete) { summary.sawTurnComplete = true; resolveTurn(); }
    },
    onclose: (e) => { summary.closeCode = e?.code ?? null; resolveTurn(); },
  },
});

const pcm = readFileSync(args.pcm);
for (let i = 0; i < pcm.length; i += 3200) {  // 100 ms chunks, as a microphone would send them
  session.sendRealtimeInput({ audio: { data: pcm.subarray(i, i + 3200).toString('base64'), mimeType: 'audio/pcm;rate=16000' } });
}
await turnDone;
session.close();
finish({ ...summary, ok: summary.sawTurnComplete }, summary.sawTurnComplete ? 0 : 1);
