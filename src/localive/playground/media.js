// Camera and screen sharing: JPEG frames at about 1 frame/s, as realtimeInput.video.
import { toBase64 } from "./pcm.js";

const MAX_SIDE = 1024;

export class FrameSource {
  /**
   * @param {"camera" | "screen"} kind
   * @param {HTMLVideoElement} preview where the stream is shown
   * @param {(frame: {data: string, mimeType: string, width: number, height: number}) => void} onFrame
   */
  constructor(kind, preview, onFrame, intervalMs = 1000) {
    this.kind = kind;
    this.preview = preview;
    this.onFrame = onFrame;
    this.intervalMs = intervalMs;
    this.stream = null;
    this.timer = null;
    this.canvas = document.createElement("canvas");
    this.busy = false;
  }

  async start(onEnded) {
    this.stream = this.kind === "screen"
      ? await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 5 }, audio: false })
      : await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
    this.stream.getVideoTracks()[0].addEventListener("ended", () => { this.stop(); onEnded(); });
    this.preview.srcObject = this.stream;
    this.preview.classList.add("live");
    await this.preview.play();
    this.timer = setInterval(() => this.capture(), this.intervalMs);
    this.capture();
  }

  async capture() {
    const video = this.preview;
    if (this.busy || !video.videoWidth) return;
    this.busy = true;
    try {
      const scale = Math.min(1, MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
      const width = Math.round(video.videoWidth * scale);
      const height = Math.round(video.videoHeight * scale);
      this.canvas.width = width;
      this.canvas.height = height;
      this.canvas.getContext("2d").drawImage(video, 0, 0, width, height);
      const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", 0.8));
      if (blob && this.stream) {
        this.onFrame({ data: toBase64(await blob.arrayBuffer()), mimeType: "image/jpeg", width, height });
      }
    } finally {
      this.busy = false;
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.preview.srcObject = null;
    this.preview.classList.remove("live");
  }
}
