// What every JS SDK test script shares: one JSON summary line on stdout, then exit; no hangs, no silent crashes.

let finished = false;

// Print `summary` as one JSON line and exit with `code` (only the first call counts).
export function finish(summary, code) {
  if (finished) return;
  finished = true;
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(code));
}

// Any stray failure (e.g. the SDK choking on a frame) ends the run with a clear error; so does the time limit.
export function guard(timeoutMs, what) {
  const crash = (stage) => (err) => finish({ ok: false, stage, error: String(err?.stack ?? err) }, 1);
  process.on('unhandledRejection', crash('unhandled'));
  process.on('uncaughtException', crash('uncaught'));
  return setTimeout(() => finish({ ok: false, stage: 'timeout', error: `${what} within ${timeoutMs} ms` }, 2),
    timeoutMs);
}
