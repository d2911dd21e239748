// Microphone capture and gapless playback, both on AudioWorklets.
import { fromBase64, pcm16ToFloat32, rateOf, toBase64 } from "./pcm.js";

const WORKLETS = new URL("./worklets.js", import.meta.url);
export const INPUT_RATE = 16000;
export const OUTPUT_RATE = 24000;

/**
 * The microphone: 16 kHz mono PCM chunks of 100 ms (echo cancellation and noise suppression on).
 * The browser resamples when it can run an AudioContext at 16 kHz; otherwise chunks go at the device rate,
 * labelled with it, and the server resamples.
 */
export class Microphone {
  constructor(onChunk) {
    this.onChunk = onChunk; // ({data: base64, mimeType, rms}) => void
    this.context = null;
    this.stream = null;
  }

  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    try {
      this.context = new AudioContext({ sampleRate: INPUT_RATE });
      await this.connect();
    } catch (err) {
      // Some browsers cannot feed a device stream into a context at another rate: use the device's rate.
      if (this.context) await this.context.close();
      this.context = new AudioContext();
      await this.connect();
    }
    return this.context.sampleRate;
  }

  async connect() {
    await this.context.audioWorklet.addModule(WORKLETS);
    const source = this.context.createMediaStreamSource(this.stream);
    const node = new AudioWorkletNode(this.context, "localive-capture", { processorOptions: { chunkMs: 100 } });
    const mimeType = `audio/pcm;rate=${this.context.sampleRate}`;
    node.port.onmessage = (event) => this.onChunk({ data: toBase64(event.data.pcm), mimeType, rms: event.data.rms });
    source.connect(node);
    this.node = node;
  }

  async stop() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.context) await this.context.close();
    this.stream = null;
    this.context = null;
  }
}

/** Gapless 24 kHz playback; flush() drops everything queued at once. */
export class Player {
  constructor(onState) {
    this.onState = onState; // ({queued, played, dropped, flushed?}) => void, in samples
    this.context = null;
    this.node = null;
    this.state = { queued: 0, played: 0, dropped: 0, flushes: 0, flushedSamples: 0 };
  }

  async start() {
    if (this.context) return;
    this.context = new AudioContext({ sampleRate: OUTPUT_RATE, latencyHint: "interactive" });
    await this.context.audioWorklet.addModule(WORKLETS);
    this.node = new AudioWorkletNode(this.context, "localive-playback", {
      numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { maxSeconds: 120 },
    });
    this.node.port.onmessage = (event) => {
      const msg = event.data;
      if (msg.type === "flushed") {
        this.state.flushes += 1;
        this.state.flushedSamples += msg.flushed;
      } else {
        Object.assign(this.state, { queued: msg.queued, played: msg.played, dropped: msg.dropped });
      }
      this.onState(this.state, msg);
    };
    this.node.connect(this.context.destination);
    if (this.context.state !== "running") await this.context.resume();
  }

  /** Queue one inlineData part of the model's audio ("audio/pcm;rate=24000", base64). */
  play(data, mimeType) {
    if (!this.node) return;
    let samples = pcm16ToFloat32(fromBase64(data));
    const rate = rateOf(mimeType);
    if (rate !== OUTPUT_RATE) samples = resampleLinear(samples, rate, OUTPUT_RATE);
    this.state.queued += samples.length; // until the worklet reports
    this.node.port.postMessage({ type: "push", samples: samples.buffer }, [samples.buffer]);
  }

  flush() {
    if (!this.node) return;
    this.state.queued = 0;
    this.node.port.postMessage({ type: "flush" });
  }

  async stop() {
    if (this.context) await this.context.close();
    this.context = null;
    this.node = null;
  }
}

// Only for servers that send another rate than Gemini's 24 kHz (localive and Gemini always send 24 kHz).
function resampleLinear(samples, from, to) {
  const out = new Float32Array(Math.round((samples.length * to) / from));
  for (let i = 0; i < out.length; i++) {
    const x = (i * from) / to;
    const j = Math.floor(x);
    const f = x - j;
    out[i] = (samples[j] || 0) * (1 - f) + (samples[j + 1] || samples[j] || 0) * f;
  }
  return out;
}
