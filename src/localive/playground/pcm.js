// 16-bit PCM and base64 helpers (pure: usable in the page, in workers and in Node tests).

/** Bytes (ArrayBuffer or Uint8Array) → base64 text. */
export function toBase64(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let text = "";
  for (let i = 0; i < u8.length; i += 0x8000) text += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(text);
}

/** base64 text → Uint8Array. */
export function fromBase64(b64) {
  const text = atob(b64);
  const u8 = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) u8[i] = text.charCodeAt(i);
  return u8;
}

/** Little-endian 16-bit PCM bytes → Float32 samples in [-1, 1). An odd trailing byte is ignored. */
export function pcm16ToFloat32(u8) {
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const out = new Float32Array(u8.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(2 * i, true) / 0x8000;
  return out;
}

/** The sample rate in a mime type such as "audio/pcm;rate=24000" (default 24000, as Gemini sends). */
export function rateOf(mimeType) {
  const m = /rate=(\d+)/.exec(mimeType || "");
  return m ? Number(m[1]) : 24000;
}
