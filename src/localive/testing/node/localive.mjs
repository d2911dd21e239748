// localive for Node tests (node:test, vitest, jest with ES modules): start a real `localive serve` on free
// 127.0.0.1 ports, get the settings `eval "$(localive env)"` would export, stop it. No dependencies but Node 18+
// and a Python with localive installed. Shipped inside the Python package (localive/testing/node/localive.mjs):
//
//   python -c "import localive.testing, pathlib; print(pathlib.Path(localive.testing.__file__).parent / 'node' / 'localive.mjs')"
//
// prints where it is; import it from there or copy it into your tests. docs/testing.md, "In your Node tests".
//
//   const server = await startLocalive({ script: 'test/replies.toml' });
//   const ai = new GoogleGenAI({ apiKey: server.apiKey, httpOptions: { baseUrl: server.baseUrl } });  // ws://
//   execFile('node', ['app.mjs'], { env: server.clientEnv() });      // an app configured by the environment: wss://
//   await server.stop();

import { execFile, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const HOST = '127.0.0.1';
const LIVE_PATH = '/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent';
const POLL_MS = 200;
const DROPPED_ENV = ['GEMINI_API_KEY', 'GOOGLE_API_KEY', 'GOOGLE_GENAI_USE_VERTEXAI'];
const running = new Set(); // servers not stopped yet: killed when this process exits

process.on('exit', () => {
  for (const server of running) server.kill();
});

/**
 * Start `localive serve` and resolve once it answers /healthz (reject, with its log's tail, if it exits or takes
 * longer than `timeoutMs`).
 *
 * @param {object} [options]
 * @param {string} [options.script]  the emulator's script (`--emulator-script`), relative to the current directory
 * @param {'off'|'emulator'|'embedded'} [options.voice='off']  `--voice`
 * @param {string} [options.replay]  answer from the cassettes in this folder instead (`--replay`; no script, voice)
 * @param {'recorded'|'fast'} [options.timing]  `--replay-timing`
 * @param {string[]} [options.args=[]]  any other `serve` flags (last: they win)
 * @param {string} [options.python]  a Python with localive installed: default $LOCALIVE_PYTHON, else python3
 * @param {number} [options.timeoutMs=120000]
 * @returns {Promise<Localive>}
 */
export async function startLocalive(options = {}) {
  const { args = [], timeoutMs = 120000 } = options;
  const python = options.python ?? process.env.LOCALIVE_PYTHON
    ?? (process.platform === 'win32' ? 'python' : 'python3');
  const [port, plainPort] = await freePorts(2);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'localive-'));
  const logPath = path.join(dataDir, 'server.log');
  const log = openSync(logPath, 'w');
  let child;
  try {
    child = spawn(python, ['-m', 'localive', 'serve', '--host', HOST, '--port', String(port),
      '--plain-port', String(plainPort), '--data-dir', path.join(dataDir, 'data'), '--admission', 'off',
      ...configFlags(options), ...args], { stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const server = new Localive({ child, python, port, plainPort, dataDir, logPath });
  running.add(server);
  try {
    await server.waitHealthy(timeoutMs);
    server.env = await localiveEnv(python, port, path.join(dataDir, 'data'));
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

function configFlags({ script, voice, replay, timing }) {
  if (replay !== undefined) {
    if (script !== undefined || voice !== undefined) {
      throw new TypeError('startLocalive: replay answers from cassettes: no script or voice with it');
    }
    return ['--replay', path.resolve(replay), ...(timing ? ['--replay-timing', timing] : [])];
  }
  if (timing !== undefined) throw new TypeError('startLocalive: timing goes with replay');
  return ['--llm', 'emulator', '--voice', voice ?? 'off', ...(script ? ['--emulator-script', path.resolve(script)] : [])];
}

class Localive {
  constructor({ child, python, port, plainPort, dataDir, logPath }) {
    this.child = child;
    this.python = python;
    this.port = port; // the TLS listener (https://, wss://)
    this.plainPort = plainPort; // the plain listener (http://, ws://)
    this.dataDir = dataDir; // its TLS certificates, keys and log; removed by stop()
    this.logPath = logPath;
    this.env = {}; // what `eval "$(localive env)"` exports: GOOGLE_GEMINI_BASE_URL (https), GEMINI_API_KEY, CAs
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
    this.spawnError = new Promise((resolve) => child.once('error', resolve));
    child.unref(); // a forgotten stop() does not keep the tests running; the 'exit' handler above kills it
  }

  get pid() { return this.child.pid; }

  /** The plain listener's base URL, for `httpOptions.baseUrl` in this process (ws://: no CA needed). */
  get baseUrl() { return `http://${HOST}:${this.plainPort}`; }

  /** The TLS listener's base URL: env.GOOGLE_GEMINI_BASE_URL (needs NODE_EXTRA_CA_CERTS, read at Node's start). */
  get tlsBaseUrl() { return `https://${HOST}:${this.port}`; }

  /** The Live API's WebSocket endpoint on the plain listener, for a raw WebSocket client. */
  get liveUrl() { return `ws://${HOST}:${this.plainPort}${LIVE_PATH}`; }

  /** The key the server accepts ("localive" unless `--api-key` was given). */
  get apiKey() { return this.env.GEMINI_API_KEY; }

  /** `base` (default: this process's environment) with the server's client settings: for an app's child process. */
  clientEnv(base = process.env) {
    const env = { ...base };
    for (const name of DROPPED_ENV) delete env[name];
    return { ...env, ...this.env };
  }

  /** Everything the server has logged so far. */
  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '(no server log)';
    }
  }

  logTail(lines = 40) { return this.log().split('\n').slice(-lines - 1).join('\n'); }

  isRunning() { return this.child.exitCode === null && this.child.signalCode === null; }

  kill(signal = 'SIGTERM') {
    if (this.isRunning()) {
      this.child.kill(signal); // twice: the first alone would drain open sessions (--drain-s), as a deployment's stop
      this.child.kill(signal);
    }
  }

  /** Stop the server (killed after 15 s) and remove its data folder. */
  async stop() {
    running.delete(this);
    if (this.isRunning() && this.child.pid !== undefined) {
      this.kill();
      const timer = setTimeout(() => this.kill('SIGKILL'), 15000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async waitHealthy(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let outcome = null;
    const ended = Promise.race([
      this.exited.then((code) => { outcome = `exited with ${code}`; }),
      this.spawnError.then((error) => { outcome = `could not be started with ${this.python}: ${error.message}`; }),
    ]);
    while (Date.now() < deadline) {
      if (await healthy(this.plainPort)) return;
      await Promise.race([ended, sleep(POLL_MS)]);
      if (outcome !== null) throw new Error(`localive serve ${outcome}:\n${this.logTail()}`);
    }
    throw new Error(`localive serve did not become healthy in ${timeoutMs} ms:\n${this.logTail()}`);
  }
}

function healthy(plainPort) {
  return new Promise((resolve) => {
    const request = http.get({ host: HOST, port: plainPort, path: '/healthz', timeout: 2000 }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Ports free on 127.0.0.1 now (all held at once, so they differ). */
async function freePorts(count) {
  const servers = await Promise.all(Array.from({ length: count }, () => new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server));
  })));
  const ports = servers.map((server) => server.address().port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Run `localive env` for this server and parse its `export NAME=value` lines, as a shell's `eval` would. */
function localiveEnv(python, port, dataDir) {
  const env = { ...process.env };
  for (const name of DROPPED_ENV) delete env[name]; // so that it exports GEMINI_API_KEY=localive
  return new Promise((resolve, reject) => {
    execFile(python, ['-m', 'localive', 'env', '--port', String(port), '--data-dir', dataDir], { env },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`localive env failed: ${error.message}\n${stderr}`));
          return;
        }
        const found = { NO_PROXY: `${HOST},localhost` };
        for (const line of stdout.split('\n').filter(Boolean)) {
          const match = /^export ([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
          if (!match) {
            reject(new Error(`unexpected line from localive env: ${JSON.stringify(line)}`));
            return;
          }
          found[match[1]] = unquote(match[2]);
        }
        resolve(found);
      });
  });
}

/** A POSIX shell word (what Python's shlex.quote writes) without its quotes. */
export function unquote(word) {
  let out = '';
  for (let i = 0; i < word.length; i += 1) {
    const c = word[i];
    if (c === "'") {
      const end = word.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote in ${JSON.stringify(word)}`);
      out += word.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < word.length && word[j] !== '"'; j += 1) {
        if (word[j] === '\\' && '"\\$`'.includes(word[j + 1])) j += 1;
        out += word[j];
      }
      if (j >= word.length) throw new Error(`unterminated quote in ${JSON.stringify(word)}`);
      i = j;
    } else if (c === '\\' && i + 1 < word.length) {
      out += word[i + 1];
      i += 1;
    } else {
      out += c;
    }
  }
  return out;
}
