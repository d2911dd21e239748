// localive's Node helper (src/localive/testing/node/localive.mjs) under node:test, as an app's suite would use it:
// the @google/genai SDK in this process on the plain listener, an app in a child process configured by the
// environment (wss:// with localive's CA), a failed start, and stop(). Run by
// tests/integration/test_node_helper.py with LOCALIVE_PYTHON set to the Python running the tests.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GoogleGenAI, Modality } from '@google/genai';
import { startLocalive, unquote } from '../../src/localive/testing/node/localive.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCRIPT = path.join(HERE, '..', 'data', 'emulator_script.toml');

let server;
before(async () => { server = await startLocalive({ script: SCRIPT }); });
after(async () => { await server?.stop(); });

// One text turn through ai.live.connect: the model's text, up to turnComplete.
async function ask(ai, prompt) {
  let text = '';
  let turnDone;
  const done = new Promise((resolve, reject) => { turnDone = { resolve, reject }; });
  const session = await ai.live.connect({
    model: 'gemini-2.0-flash-live-001',
    config: { responseModalities: [Modality.TEXT] },
    callbacks: {
      onmessage: (message) => {
        for (const part of message.serverContent?.modelTurn?.parts ?? []) text += part.text ?? '';
        if (message.serverContent?.turnComplete) turnDone.resolve();
      },
      onclose: (event) => turnDone.reject(new Error(`closed ${event.code} ${event.reason}`)),
    },
  });
  session.sendClientContent({ turns: [{ role: 'user', parts: [{ text: prompt }] }], turnComplete: true });
  try {
    await done;
  } finally {
    session.close();
  }
  return text;
}

test('the SDK in this process reaches the emulator on the plain listener', async () => {
  const ai = new GoogleGenAI({ apiKey: server.apiKey, httpOptions: { baseUrl: server.baseUrl } });
  assert.equal(await ask(ai, 'What is the capital of France?'), 'The capital of France is Paris.');
  assert.equal(server.baseUrl, `http://127.0.0.1:${server.plainPort}`);
});

test('an app in a child process is configured by the environment alone (wss:// and the CA)', async () => {
  const env = server.clientEnv();
  assert.equal(env.GOOGLE_GEMINI_BASE_URL, server.tlsBaseUrl);
  assert.ok(existsSync(env.NODE_EXTRA_CA_CERTS) && existsSync(env.SSL_CERT_FILE));
  assert.equal(env.GEMINI_API_KEY, 'localive');
  const stdout = await new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(HERE, 'text_turn.mjs'), '--prompt', 'What is the capital of Germany?'],
      { cwd: HERE, env }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${out}\n${err}`))
        : resolve(out)));
  });
  const summary = JSON.parse(stdout.trim().split('\n').at(-1));
  assert.equal(summary.ok, true, stdout);
  assert.equal(summary.text, 'The capital of Germany is Berlin.');
});

test('a server that cannot start rejects with its log', async () => {
  await assert.rejects(startLocalive({ args: ['--no-such-flag'] }),
    (error) => /localive serve exited with 2/.test(error.message) && /--no-such-flag/.test(error.message));
  await assert.rejects(startLocalive({ replay: 'x', script: 'y' }), /no script or voice with it/);
});

test('with no options: the emulator\'s default reply; stop() ends the server and removes its data', async () => {
  const plain = await startLocalive();
  const ai = new GoogleGenAI({ apiKey: plain.apiKey, httpOptions: { baseUrl: plain.baseUrl } });
  assert.equal(await ask(ai, 'hello'), 'You said: hello');
  await plain.stop();
  assert.equal(plain.isRunning(), false);
  assert.equal(existsSync(plain.dataDir), false);
  const refused = await new Promise((resolve) => {
    http.get(`${plain.baseUrl}/healthz`, () => resolve(false)).on('error', () => resolve(true));
  });
  assert.equal(refused, true);
});

test('unquote reads what shlex.quote writes', () => {
  assert.equal(unquote('/tmp/plain.pem'), '/tmp/plain.pem');
  assert.equal(unquote("'/tmp/with space/ca.pem'"), '/tmp/with space/ca.pem');
  assert.equal(unquote(`'it'"'"'s'`), "it's");
  assert.equal(unquote('"a\\"b"'), 'a"b');
  assert.throws(() => unquote("'a"), /unterminated/);
});
