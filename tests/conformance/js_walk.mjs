// Drive every case of the conformance walk through the official JS SDK (@google/genai) into a running localive.
//
// The JS twin of tests/conformance/sdk_walk.py: the cases come from that script (its --dump-cases file, already in
// the JS SDK's camelCase with bytes as base64), and each one goes through the JS SDK's real `live.connect` and
// `session.send*` (its real converters). The frames the SDK sends are captured at the socket (the `ws` package's
// WebSocket.send, which the SDK uses on Node).
//
// Usage: node tests/conformance/js_walk.mjs CASES.json PACKAGE
//   PACKAGE: the npm name of the SDK to drive, as installed in tests/js/node_modules: `@google/genai` (the newest
//   release) or `genai-oldest` (an alias of the oldest supported one).
// Configured by the environment, as an app is after `eval "$(localive env)"`: GOOGLE_GEMINI_BASE_URL,
// NODE_EXTRA_CA_CERTS, GEMINI_API_KEY.
//
// Prints one JSON object per line: sdk, message, case, frame (the first client frame of the case) and outcome:
// - `ok`: a setup case got setupComplete; a runtime case was followed by a probe turn that was answered;
// - `closed N: reason`: the server closed the session;
// - `sdk: …`: the SDK refused the value before sending anything (`sdk: not in this SDK`: no such method);
// - `timeout`: neither (a hang: always a failure).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HALF_CASCADE = 'gemini-live-2.5-flash-preview';
const NATIVE_AUDIO = 'gemini-2.5-flash-native-audio-preview-12-2025';
const NATIVE_ONLY = ['proactivity', 'enable_affective_dialog', 'generation_config.enable_affective_dialog'];
const PROBE = 'conformance probe';
const TIMEOUT_MS = 20_000;

const [casesPath, packageName] = process.argv.slice(2);
if (!casesPath || !packageName) {
  process.stderr.write('usage: node js_walk.mjs CASES.json PACKAGE\n');
  process.exit(2);
}

// --- the SDK, and the socket it writes to -------------------------------------------------------------------------

// The packages live in tests/js/node_modules (this script is in tests/conformance/).
const jsRequire = createRequire(new URL('../js/package.json', import.meta.url));
// (found by Node's lookup paths: the package's exports do not include its package.json)
const packageJsonPath = jsRequire.resolve.paths(packageName).map((dir) => join(dir, packageName, 'package.json'))
  .find((path) => existsSync(path));
if (!packageJsonPath) {
  process.stderr.write(`js_walk: ${packageName} is not installed in tests/js/node_modules (npm ci there)\n`);
  process.exit(2);
}
const sdkVersion = JSON.parse(readFileSync(packageJsonPath, 'utf8')).version;
const sdkRequire = createRequire(packageJsonPath);
// The Node build (what `import '@google/genai'` gives on Node), imported by its path: this script is outside tests/js.
const sdk = await import(new URL('dist/node/index.mjs', pathToFileURL(packageJsonPath)).href);
const { GoogleGenAI } = sdk;

// The SDK's `ws` (resolved from the SDK's own place): every string it sends is recorded.
const { WebSocket } = sdkRequire('ws');
const SENT = [];
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function recordingSend(data, ...rest) {
  SENT.push(typeof data === 'string' ? data : Buffer.from(data).toString());
  return send.call(this, data, ...rest);
};

process.on('unhandledRejection', (err) => process.stderr.write(`unhandled rejection: ${err?.stack ?? err}\n`));

// --- helpers ------------------------------------------------------------------------------------------------------

function emit(message, caseName, frames, outcome) {
  let frame = null;
  if (frames.length) {
    try { frame = JSON.parse(frames[0]); } catch { frame = frames[0]; }
  }
  process.stdout.write(JSON.stringify({ sdk: sdkVersion, message, case: caseName, frame, outcome }) + '\n');
}

function sdkOutcome(err) {
  const text = String(err?.message ?? err ?? '');
  return `sdk: ${err?.name ?? 'Error'}: ${(text.split('\n')[0] ?? '').slice(0, 200)}`;
}

const closedOutcome = (e) => `closed ${e?.code ?? 1006}: ${e?.reason ?? ''}`.trim();

class Timeout extends Error {}

function withTimeout(promise, ms) {
  let timer;
  const limit = new Promise((_, reject) => { timer = setTimeout(() => reject(new Timeout('timeout')), ms); });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

// One live connection: its messages (after setupComplete) and its close, awaited by `until`.
class Connection {
  constructor() {
    this.closed = null; // the outcome once the socket has closed
    this.waiter = null; // {test(msg) -> value|undefined, resolve, reject}
    this.session = null;
  }

  callbacks() {
    return {
      onmessage: (msg) => {
        if (!this.waiter) return;
        let value;
        try { value = this.waiter.test(msg); } catch (err) { this.waiter.reject(err); return; }
        if (value !== undefined) this.waiter.resolve(value);
      },
      onerror: () => {},
      onclose: (e) => {
        this.closed = closedOutcome(e);
        this.waiter?.resolve(this.closed);
      },
    };
  }

  async open(ai, model, config) {
    this.session = await ai.live.connect({ model, config: structuredClone(config), callbacks: this.callbacks() });
    return this.session;
  }

  // Waits for a message `test` maps to a value (or for the close: its outcome); at most `ms`.
  until(test, ms = TIMEOUT_MS) {
    if (this.closed) return Promise.resolve(this.closed);
    const done = new Promise((resolve, reject) => {
      this.waiter = { test, resolve, reject };
    });
    return withTimeout(done, ms).finally(() => { this.waiter = null; });
  }

  close() {
    if (this.closed) return;
    try { this.session?.close(); } catch { /* already gone */ }
  }
}

// --- cases --------------------------------------------------------------------------------------------------------

const ai = new GoogleGenAI({}); // base URL and API key from the environment

async function setupCase(caseName, config) {
  const model = NATIVE_ONLY.some((p) => caseName.startsWith(p)) ? NATIVE_AUDIO : HALF_CASCADE;
  SENT.length = 0;
  const conn = new Connection();
  let outcome = 'ok';
  try {
    await withTimeout(conn.open(ai, model, config), TIMEOUT_MS);
  } catch (err) {
    if (err instanceof Timeout) outcome = 'timeout';
    else if (conn.closed) outcome = conn.closed;
    else if (!SENT.length) outcome = sdkOutcome(err);
    else outcome = `error: ${err?.name}: ${String(err?.message ?? err).split('\n')[0]}`;
  }
  conn.close();
  emit('setup', caseName, SENT.slice(0, 1), outcome);
}

// Runtime cases share a session until one closes it (or hangs); each is followed by a probe turn.
async function runtimeCases(message, cases, config) {
  const pending = [...cases];
  if (message === 'contextUpdate' && typeof sdk.Session?.prototype?.sendContextUpdate !== 'function') {
    for (const { case: caseName } of pending) emit(message, caseName, [], 'sdk: not in this SDK');
    return;
  }
  while (pending.length) {
    SENT.length = 0;
    const conn = new Connection();
    try {
      await withTimeout(conn.open(ai, HALF_CASCADE, config), TIMEOUT_MS);
    } catch (err) {
      const outcome = err instanceof Timeout ? 'timeout' : conn.closed ?? sdkOutcome(err);
      emit(message, '(session)', [], outcome);
      conn.close();
      pending.shift();
      continue;
    }
    while (pending.length) {
      const { case: caseName, value } = pending[0];
      const { frames, outcome } = await runtimeCase(conn, message, value);
      emit(message, caseName, frames, outcome);
      pending.shift();
      if (outcome !== 'ok' && !outcome.startsWith('sdk:')) break;
    }
    conn.close();
  }
}

async function runtimeCase(conn, message, value) {
  const session = conn.session;
  let start = SENT.length;
  let frames = null;
  try {
    if (message === 'toolResponse') {
      const call = conn.until((msg) => msg.toolCall?.functionCalls?.[0]);
      session.sendRealtimeInput({ text: 'turn on the lights' });
      const got = await call;
      if (typeof got === 'string') return { frames: [], outcome: got }; // closed while waiting
      start = SENT.length;
      session.sendToolResponse({ functionResponses: [{ ...value, id: got.id, name: got.name }] });
    } else if (message === 'clientContent') {
      session.sendClientContent({ turns: [value.turns], turnComplete: value.turnComplete });
    } else if (message === 'realtimeInput') {
      session.sendRealtimeInput(value);
    } else if (message === 'contextUpdate') {
      // The JS method takes the LiveClientContextUpdate shape: its tools are a wrapper, {tools: [...]}.
      const update = Array.isArray(value.tools) ? { ...value, tools: { tools: value.tools } } : value;
      session.sendContextUpdate(update);
    }
    frames = SENT.slice(start);
    if (message === 'realtimeInput' && 'activityStart' in value) session.sendRealtimeInput({ activityEnd: {} });
    return { frames, outcome: await probe(conn) };
  } catch (err) {
    frames ??= SENT.slice(start);
    if (err instanceof Timeout) return { frames, outcome: 'timeout' };
    if (conn.closed) return { frames, outcome: conn.closed };
    if (!frames.length) return { frames, outcome: sdkOutcome(err) };
    return { frames, outcome: `error: ${err?.name}: ${String(err?.message ?? err).split('\n')[0]}` };
  }
}

// Sends the probe and waits for its answer: model text (concatenated over the turn) that echoes it.
// Each probe is numbered: the answer to an earlier probe (which a later turn may repeat) does not count.
let probes = 0;
async function probe(conn) {
  probes += 1;
  const text = `${PROBE} ${probes}`;
  let heard = '';
  const answered = conn.until((msg) => {
    const parts = msg.serverContent?.modelTurn?.parts ?? [];
    heard += parts.map((p) => (typeof p.text === 'string' ? p.text : '')).join('');
    if (heard.includes(text)) return 'ok';
    if (msg.serverContent?.turnComplete) heard = '';
    return undefined;
  });
  conn.session.sendRealtimeInput({ text });
  return answered;
}

const { steps } = JSON.parse(readFileSync(casesPath, 'utf8'));
for (const { message, config, cases } of steps) {
  if (config === null) {
    for (const { case: caseName, value } of cases) await setupCase(caseName, value);
  } else {
    await runtimeCases(message, cases, config);
  }
}
process.stdout.write('', () => process.exit(0));
