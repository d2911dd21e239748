// The raw message log: every message sent and received, downloadable as JSONL to reproduce a session.
// Bounded: once the log holds MAX_CHARS of text, new audio/video payloads are replaced by their size.

export const MAX_CHARS = 64 * 1024 * 1024;
export const MAX_ENTRIES = 200000;

export class RawLog {
  constructor(maxChars = MAX_CHARS, maxEntries = MAX_ENTRIES) {
    this.maxChars = maxChars;
    this.maxEntries = maxEntries;
    this.lines = [];
    this.chars = 0;
    this.omitted = 0; // entries dropped once the log was full
  }

  /** Record one message. dir: "send" | "recv" | "event" (connection events: open, close). */
  add(dir, message, now = Date.now()) {
    if (this.lines.length >= this.maxEntries) {
      this.omitted += 1;
      return;
    }
    let line = JSON.stringify({ time: new Date(now).toISOString(), dir, message });
    if (this.chars + line.length > this.maxChars) {
      line = JSON.stringify({ time: new Date(now).toISOString(), dir, message: stripMedia(message) });
    }
    this.lines.push(line);
    this.chars += line.length + 1;
  }

  clear() {
    this.lines = [];
    this.chars = 0;
    this.omitted = 0;
  }

  toJSONL() {
    return this.lines.map((l) => l + "\n").join("");
  }
}

/** A copy of a message with every base64 `data` field of a media blob replaced by "<N base64 chars omitted>". */
export function stripMedia(value) {
  if (Array.isArray(value)) return value.map(stripMedia);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = k === "data" && typeof v === "string" && "mimeType" in value ? `<${v.length} base64 chars omitted>` : stripMedia(v);
    }
    return out;
  }
  return value;
}
