// One Live API connection: the WebSocket, the setup handshake, and every message through the raw log.

export const LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent";

/** The WebSocket URL for this page's server; with an ephemeral token, the Constrained endpoint. */
export function liveUrl(location, token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const base = `${scheme}://${location.host}${LIVE_PATH}`;
  return token ? `${base}Constrained?access_token=${encodeURIComponent(token)}` : base;
}

export class LiveConnection {
  /**
   * @param {object} handlers onMessage(msg), onOpen(), onSetupComplete(), onClose({code, reason})
   * @param {import("./rawlog.js").RawLog} log
   */
  constructor(handlers, log) {
    this.handlers = handlers;
    this.log = log;
    this.ws = null;
    this.ready = false;
  }

  connect(url, setupMessage) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let settled = false;
      ws.onopen = () => {
        this.log.add("event", { open: url.replace(/access_token=[^&]+/, "access_token=…") });
        this.send(setupMessage);
      };
      ws.onmessage = (event) => {
        const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data);
        let msg;
        try {
          msg = JSON.parse(text);
        } catch {
          this.log.add("recv", { unparsed: text.slice(0, 200) });
          return;
        }
        this.log.add("recv", msg);
        if (msg.setupComplete !== undefined && !this.ready) {
          this.ready = true;
          settled = true;
          resolve();
        }
        this.handlers.onMessage(msg);
      };
      ws.onerror = () => {}; // the close event follows with the code and reason
      ws.onclose = (event) => {
        this.ready = false;
        this.log.add("event", { close: { code: event.code, reason: event.reason } });
        this.handlers.onClose({ code: event.code, reason: event.reason });
        if (!settled) {
          settled = true;
          reject(new Error(`closed ${event.code}${event.reason ? ": " + event.reason : ""}`));
        }
      };
    });
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.log.add("send", message);
    this.ws.send(JSON.stringify(message));
    return true;
  }

  close() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "closed by the playground");
  }
}
