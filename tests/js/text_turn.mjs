// One text turn through the unmodified @google/genai SDK, configured only by the environment:
//   GOOGLE_GEMINI_BASE_URL  (the SDK reads it when no httpOptions.baseUrl is given; http:// -> ws://)
//   NODE_EXTRA_CA_CERTS     (trusts localive's CA for wss://)
//   GEMINI_API_KEY          (the SDK sends it as ?key=)
//
// Usage: node text_turn.mjs [--model NAME] [--prompt TEXT] [--timeout-ms N]
//
// Prints exactly one JSON line on stdout:
//   success: {"ok":true,"text":...,"sawSetupComplete":...,"sawTurnComplete":...,"sawGenerationComplete":...,
//             "closeCode":...,"closeReason":...,"messageKinds":[...]}   and exits 0
//   failure: {"ok":false,"stage":"connect"|"turn"|"timeout","error":"..."}  and exits 1 (2 on timeout)

import { GoogleGenAI, Modality } from '@google/genai';
import { finish, guard } from './harness.mjs';

function parseArgs(argv) {
  const args = {
    model: 'gemini-2.0-flash-live-001',
    prompt: 'What is the capital of France?',
    timeoutMs: 15000,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value for ${name}`);
    if (name === '--model') args.model = value;
    else if (name === '--prompt') args.prompt = value;
    else if (name === '--timeout-ms') args.timeoutMs = Number(value);
    else throw new Error(`unknown argument ${name}`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const hardTimeout = guard(args.timeoutMs, 'no complete turn');

if (!process.env.GOOGLE_GEMINI_BASE_URL) {
  finish({ ok: false, stage: 'config', error: 'GOOGLE_GEMINI_BASE_URL is not set' }, 1);
} else {
  await run(args);
}

async function run({ model, prompt }) {
  // No options at all: base URL and API key both come from the environment.
  const ai = new GoogleGenAI({});

  const summary = {
    ok: true,
    text: '',
    sawSetupComplete: false,
    sawGenerationComplete: false,
    sawTurnComplete: false,
    closeCode: null,
    closeReason: null,
    messageKinds: [],
  };
  let resolveTurn;
  const turnDone = new Promise((resolve) => { resolveTurn = resolve; });
  let resolveClosed;
  const closed = new Promise((resolve) => { resolveClosed = resolve; });
  let session;

  try {
    session = await ai.live.connect({
      model,
      config: { responseModalities: [Modality.TEXT] },
      callbacks: {
        onmessage: (msg) => {
          summary.messageKinds.push(Object.keys(msg).sort().join('+'));
          if (msg.setupComplete) summary.sawSetupComplete = true;
          const content = msg.serverContent;
          if (content?.modelTurn?.parts) {
            for (const part of content.modelTurn.parts) {
              if (typeof part.text === 'string' && !part.thought) summary.text += part.text;
            }
          }
          if (content?.generationComplete) summary.sawGenerationComplete = true;
          if (content?.turnComplete) {
            summary.sawTurnComplete = true;
            resolveTurn();
          }
        },
        onerror: (e) => {
          summary.error = String(e?.message ?? e);
        },
        onclose: (e) => {
          summary.closeCode = e?.code ?? null;
          summary.closeReason = e?.reason ?? null;
          resolveClosed();
          resolveTurn(); // a close before turnComplete ends the wait too; reported as sawTurnComplete=false
        },
      },
    });
  } catch (err) {
    clearTimeout(hardTimeout);
    finish({ ok: false, stage: 'connect', error: String(err?.message ?? err) }, 1);
    return;
  }

  session.sendClientContent({ turns: [{ role: 'user', parts: [{ text: prompt }] }], turnComplete: true });
  await turnDone;
  if (!summary.sawTurnComplete) {
    clearTimeout(hardTimeout);
    finish({ ...summary, ok: false, stage: 'turn', error: 'the connection closed before turnComplete' }, 1);
    return;
  }
  session.close();
  await closed;
  clearTimeout(hardTimeout);
  finish(summary, 0);
}
