// AudioWorklet processors: microphone capture (Float32 → 16-bit PCM chunks) and gapless playback with flush.
// Loaded with audioWorklet.addModule(); runs on the audio rendering thread.

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const chunkMs = (options.processorOptions && options.processorOptions.chunkMs) || 100;
    this.chunk = new Int16Array(Math.round((sampleRate * chunkMs) / 1000));
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      const s = Math.max(-1, Math.min(1, channel[i]));
      this.sumSquares += s * s;
      this.chunk[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.filled === this.chunk.length) {
        const pcm = this.chunk.slice();
        const rms = Math.sqrt(this.sumSquares / pcm.length);
        this.port.postMessage({ pcm: pcm.buffer, rms }, [pcm.buffer]);
        this.filled = 0;
        this.sumSquares = 0;
      }
    }
    return true;
  }
}

// A bounded ring buffer of samples: "push" appends, "flush" drops everything queued at once (barge-in, stop).
class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const seconds = (options.processorOptions && options.processorOptions.maxSeconds) || 120;
    this.ring = new Float32Array(Math.round(sampleRate * seconds));
    this.read = 0;
    this.queued = 0;
    this.played = 0;
    this.dropped = 0;
    this.sinceReport = 0;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(msg) {
    if (msg.type === "push") {
      const samples = new Float32Array(msg.samples);
      const room = this.ring.length - this.queued;
      const n = Math.min(room, samples.length);
      let write = (this.read + this.queued) % this.ring.length;
      for (let i = 0; i < n; i++) {
        this.ring[write] = samples[i];
        write = write + 1 === this.ring.length ? 0 : write + 1;
      }
      this.queued += n;
      this.dropped += samples.length - n;
      this.report();
    } else if (msg.type === "flush") {
      const flushed = this.queued;
      this.queued = 0;
      this.port.postMessage({ type: "flushed", flushed, played: this.played });
      this.report();
    }
  }

  report() {
    this.port.postMessage({ type: "state", queued: this.queued, played: this.played, dropped: this.dropped });
    this.sinceReport = 0;
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const n = Math.min(out.length, this.queued);
    for (let i = 0; i < n; i++) {
      out[i] = this.ring[this.read];
      this.read = this.read + 1 === this.ring.length ? 0 : this.read + 1;
    }
    out.fill(0, n);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.queued -= n;
    this.played += n;
    this.sinceReport += out.length;
    if (n > 0 && (this.queued === 0 || this.sinceReport >= sampleRate / 20)) this.report();
    return true;
  }
}

registerProcessor("localive-capture", CaptureProcessor);
registerProcessor("localive-playback", PlaybackProcessor);
