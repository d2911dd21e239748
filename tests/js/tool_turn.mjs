// A function call through the unmodified @google/genai SDK (environment-only configuration, like text_turn.mjs):
// declare turn_on_the_lights, ask for it, answer the toolCall with sendToolResponse, read the model's answer.
//
// Usage: node tool_turn.mjs [--timeout-ms N]
// Prints one JSON line: {"ok":true,"calls":[{id,name,args}],"text":...,"sawTurnComplete":true} (exit 0),
// or {"ok":false,"stage":...,"error":...} (exit 1; 2 on timeout).

import { GoogleGenAI, Modality } from '@google/genai';
import { finish, guard } from './harness.mjs';

const timeoutMs = process.argv[2] === '--timeout-ms' ? Number(process.argv[3]) : 15000;
const hardTimeout = guard(timeoutMs, 'no complete tool turn');
const ai = new GoogleGenAI({});
const summary = { ok: true, calls: [], text: '', sawTurnComplete: false, closeCode: null };
let resolveTurn;
const turnDone = new Promise((resolve) => { resolveTurn = resolve; });
let session;

try {
  session = await ai.live.connect({
    model: 'gemini-2.0-flash-live-001',
    config: {
      responseModalities: [Modality.TEXT],
      tools: [{ functionDeclarations: [{ name: 'turn_on_the_lights' }, { name: 'turn_off_the_lights' }] }],
    },
    callbacks: {
      onmessage: (msg) => {
        if (msg.toolCall) {
          for (const call of msg.toolCall.functionCalls ?? []) summary.calls.push(call);
          session.sendToolResponse({
            functionResponses: (msg.toolCall.functionCalls ?? []).map((call) => (
              { id: call.id, name: call.name, response: { result: 'ok' } })),
          });
        }
        for (const part of msg.serverContent?.modelTurn?.parts ?? []) {
          if (typeof part.text === 'string') summary.text += part.text;
        }
        if (msg.serverContent?.turnComplete) {
          summary.sawTurnComplete = true;
          resolveTurn();
        }
      },
      onerror: (e) => { summary.error = String(e?.message ?? e); },
      onclose: (e) => { summary.closeCode = e?.code ?? null; resolveTurn(); },
    },
  });
} catch (err) {
  clearTimeout(hardTimeout);
  finish({ ok: false, stage: 'connect', error: String(err?.message ?? err) }, 1);
}

session.sendClientContent({ turns: [{ role: 'user', parts: [{ text: 'Turn on the lights please' }] }] });
await turnDone;
clearTimeout(hardTimeout);
session.close();
finish(summary.sawTurnComplete ? summary : { ...summary, ok: false, stage: 'turn' }, summary.sawTurnComplete ? 0 : 1);
