// The playground page: settings → setup, microphone/camera/screen → realtimeInput, server messages → transcript,
// playback, tool calls, usage and latency. Everything sent and received goes through the raw log.
import { Microphone, Player, OUTPUT_RATE } from "./audio.js";
import { answerCall } from "./demo_tools.js";
import { LiveConnection, liveUrl } from "./live.js";
import { FrameSource } from "./media.js";
import { RawLog } from "./rawlog.js";
import { buildSetup } from "./setup.js";

const $ = (id) => document.getElementById(id);
const SPEECH_RMS = 0.015; // a microphone chunk louder than this counts as speech, for the latency column
const LOG_ROWS = 300; // messages shown on the page (the download has them all)

const state = {
  config: null,
  conn: null,
  log: new RawLog(),
  mic: null,
  player: null,
  frames: { camera: null, screen: null },
  connected: false,
  setup: null,
  turn: null, // the model's current turn
  turns: [], // finished turns: {n, endedBy, firstAudioMs, firstTextMs, audioSamples, interrupted}
  userEnd: null, // {at, by}: when the user's last turn ended
  lastSpeechAt: 0,
  userBubble: null,
  modelBubble: null,
  talking: false,
  lastClose: null,
  reconnecting: false,
  videoFrames: 0,
};

// ---- settings ---------------------------------------------------------------------------------------------

async function loadConfig() {
  const response = await fetch("/playground/config.json");
  state.config = await response.json();
  const models = $("model");
  for (const m of state.config.models) models.add(new Option(m.name, m.name));
  models.value = state.config.defaultModel;
  const voices = $("voice");
  for (const v of state.config.voices) voices.add(new Option(`${v.name} — ${v.style}`, v.name));
  voices.value = state.config.defaultVoice;
  onModelChange();
}

function currentModel() {
  return state.config.models.find((m) => m.name === $("model").value);
}

function onModelChange() {
  const model = currentModel();
  $("model-about").textContent = `${model.family}${model.description ? " — " + model.description : ""}`;
  const modality = $("modality");
  for (const option of modality.options) option.disabled = !model.modalities.includes(option.value);
  if (modality.selectedOptions[0].disabled) modality.value = model.modalities[0];
  const tools = { "tool-functions": "functionDeclarations", "tool-code": "codeExecution", "tool-search": "googleSearch" };
  for (const [id, tool] of Object.entries(tools)) {
    const box = $(id);
    const reason = !model.tools.includes(tool) ? `${model.name} does not support ${tool}`
      : state.config.unavailable[tool] || "";
    box.disabled = Boolean(reason);
    box.parentElement.title = reason;
    if (reason) box.checked = false;
  }
  onModalityChange();
}

function onModalityChange() {
  const audio = $("modality").value === "AUDIO";
  $("voice").disabled = !audio;
  $("out-tx").disabled = !audio;
}

function formValues() {
  const number = (id) => ($(id).value === "" ? NaN : Number($(id).value));
  return {
    model: $("model").value,
    modality: $("modality").value,
    voice: $("voice").value,
    systemInstruction: $("system").value,
    pushToTalk: $("ptt-mode").checked,
    startSensitivity: $("start-sens").value,
    endSensitivity: $("end-sens").value,
    prefixPaddingMs: number("prefix-ms"),
    silenceDurationMs: number("silence-ms"),
    inputTranscription: $("in-tx").checked,
    outputTranscription: $("out-tx").checked,
    demoFunctions: $("tool-functions").checked,
    codeExecution: $("tool-code").checked,
    googleSearch: $("tool-search").checked,
    mediaResolution: $("media-res").value,
  };
}

// ---- connection -------------------------------------------------------------------------------------------

async function connect() {
  setStatus("connecting", "connecting…");
  $("connect").disabled = true;
  try {
    state.setup = buildSetup(formValues());
    const token = state.config.auth === "token" ? await mintToken() : null;
    if (!state.player) state.player = new Player(onPlayback);
    await state.player.start();
    state.conn = new LiveConnection({ onMessage, onClose }, state.log);
    renderLogRow("send", state.setup);
    await state.conn.connect(liveUrl(window.location, token), state.setup);
    state.connected = true;
    setStatus("connected", `connected · ${state.setup.setup.model.replace("models/", "")}`);
    note(`Connected: ${describeSetup(state.setup.setup)}`);
  } catch (err) {
    setStatus("error", err.message);
    note(`Could not connect: ${err.message}`, "error");
  }
  syncButtons();
}

async function mintToken() {
  const response = await fetch("/playground/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : `token request failed (${response.status})`);
  return body.name;
}

function disconnect() {
  if (state.conn) state.conn.close();
}

async function reconnect(reason) {
  if (!state.connected || state.reconnecting) return;
  state.reconnecting = true;
  note(`Reconnecting: ${reason}`);
  const closed = new Promise((resolve) => { state.onClosed = resolve; });
  disconnect();
  await closed;
  state.reconnecting = false;
  await connect();
}

function onClose({ code, reason }) {
  const wasConnected = state.connected;
  state.connected = false;
  state.lastClose = { code, reason };
  if (state.player) state.player.flush();
  finishTurn(true);
  if (wasConnected) note(`Connection closed: ${code}${reason ? " " + reason : ""}`, code === 1000 ? "" : "error");
  setStatus(code === 1000 ? "idle" : "error", `closed ${code}${reason ? ": " + reason : ""}`);
  if (!state.reconnecting) {
    stopMic();
    for (const kind of ["camera", "screen"]) stopFrames(kind);
  }
  syncButtons();
  if (state.onClosed) { state.onClosed(); state.onClosed = null; }
}

function send(message) {
  if (!state.conn || !state.conn.send(message)) return false;
  if (!message.realtimeInput || !(message.realtimeInput.audio || message.realtimeInput.video)) renderLogRow("send", message);
  return true;
}

// ---- server messages --------------------------------------------------------------------------------------

function onMessage(msg) {
  if (msg.setupComplete !== undefined) renderLogRow("recv", msg);
  if (msg.serverContent) onServerContent(msg.serverContent);
  if (msg.toolCall) onToolCall(msg.toolCall);
  if (msg.toolCallCancellation) note(`Tool calls cancelled: ${msg.toolCallCancellation.ids.join(", ")}`);
  if (msg.usageMetadata) renderUsage(msg.usageMetadata);
  if (msg.goAway) note(`GoAway: the server will close this connection in ${msg.goAway.timeLeft}`);
  if (!isAudioOnly(msg) && msg.setupComplete === undefined) renderLogRow("recv", msg);
}

function isAudioOnly(msg) {
  const parts = msg.serverContent && msg.serverContent.modelTurn && msg.serverContent.modelTurn.parts;
  return Boolean(parts) && parts.every((p) => p.inlineData) && Object.keys(msg.serverContent).length === 1;
}

function onServerContent(content) {
  if (content.inputTranscription && content.inputTranscription.text) {
    userSays(content.inputTranscription.text);
  }
  if (content.modelTurn || content.outputTranscription) beginTurn();
  for (const part of (content.modelTurn && content.modelTurn.parts) || []) {
    if (part.inlineData && part.inlineData.mimeType.startsWith("audio/")) {
      if (!state.turn.firstAudioAt) state.turn.firstAudioAt = performance.now();
      const rate = Number((/rate=(\d+)/.exec(part.inlineData.mimeType) || [0, OUTPUT_RATE])[1]);
      state.turn.audioSamples += Math.round((part.inlineData.data.length * 3) / 8) * (OUTPUT_RATE / rate);
      if (!state.turn.stopped) state.player.play(part.inlineData.data, part.inlineData.mimeType);
    } else if (part.text !== undefined) {
      if (!state.turn.firstTextAt) state.turn.firstTextAt = performance.now();
      modelSays(part.text, part.thought ? "thought" : "");
    } else if (part.executableCode) {
      entry("code", `${part.executableCode.language || "PYTHON"}\n${part.executableCode.code}`);
    } else if (part.codeExecutionResult) {
      entry("code-result", `${part.codeExecutionResult.outcome}\n${part.codeExecutionResult.output || ""}`);
    }
  }
  if (content.outputTranscription && content.outputTranscription.text) {
    if (!state.turn.firstTextAt) state.turn.firstTextAt = performance.now();
    modelSays(content.outputTranscription.text);
  }
  if (content.groundingMetadata) renderGrounding(content.groundingMetadata);
  if (content.interrupted) {
    const queued = state.player ? state.player.state.queued : 0;
    if (state.player) state.player.flush();
    if (state.turn) state.turn.interrupted = true;
    note(`Interrupted: flushed ${Math.round((queued / OUTPUT_RATE) * 1000)} ms of queued audio`);
  }
  if (content.turnComplete) finishTurn(false);
}

function onToolCall(toolCall) {
  beginTurn();
  const functionResponses = [];
  for (const call of toolCall.functionCalls || []) {
    const answer = answerCall(call);
    entry("tool", `→ ${call.name}(${JSON.stringify(call.args || {})})\n← ${JSON.stringify(answer.response)}`);
    functionResponses.push(answer);
  }
  if (functionResponses.length) send({ toolResponse: { functionResponses } });
}

function beginTurn() {
  if (state.turn) return;
  const end = state.userEnd || (state.lastSpeechAt ? { at: state.lastSpeechAt, by: "voice" } : null);
  state.turn = {
    n: state.turns.length + 1, startedAt: performance.now(), userEnd: end, firstAudioAt: 0, firstTextAt: 0,
    audioSamples: 0, interrupted: false, stopped: false,
  };
  state.userEnd = null;
  state.userBubble = null;
  state.modelBubble = null;
}

function finishTurn(closed) {
  const turn = state.turn;
  if (!turn) return;
  state.turn = null;
  state.modelBubble = null;
  const since = (t) => (t && turn.userEnd ? Math.round(t - turn.userEnd.at) : null);
  const done = {
    n: turn.n, endedBy: turn.userEnd ? turn.userEnd.by : "–", firstAudioMs: since(turn.firstAudioAt),
    firstTextMs: since(turn.firstTextAt), audioSeconds: turn.audioSamples / OUTPUT_RATE,
    interrupted: turn.interrupted || closed, stopped: turn.stopped,
  };
  state.turns.push(done);
  renderLatency(done);
}

// ---- input ------------------------------------------------------------------------------------------------

async function toggleMic() {
  if (state.mic) {
    await stopMic();
    if (state.connected && !formValues().pushToTalk) send({ realtimeInput: { audioStreamEnd: true } });
    syncButtons();
    return;
  }
  state.mic = new Microphone(onMicChunk);
  try {
    const rate = await state.mic.start();
    note(`Microphone on (${rate} Hz${rate === 16000 ? "" : ", resampled by the server"})`);
  } catch (err) {
    state.mic = null;
    note(`Microphone unavailable: ${err.message}`, "error");
  }
  syncButtons();
}

async function stopMic() {
  if (!state.mic) return;
  const mic = state.mic;
  state.mic = null;
  await mic.stop();
  $("level").firstElementChild.style.width = "0";
}

function onMicChunk({ data, mimeType, rms }) {
  $("level").firstElementChild.style.width = `${Math.min(100, Math.round(rms * 400))}%`;
  if (!state.connected) return;
  const ptt = state.setup.setup.realtimeInputConfig && state.setup.setup.realtimeInputConfig.automaticActivityDetection
    && state.setup.setup.realtimeInputConfig.automaticActivityDetection.disabled;
  if (ptt && !state.talking) return;
  if (rms > SPEECH_RMS) state.lastSpeechAt = performance.now();
  send({ realtimeInput: { audio: { data, mimeType } } });
}

function talk(down) {
  if (!state.connected || down === state.talking) return;
  state.talking = down;
  $("talk").classList.toggle("held", down);
  if (down) {
    send({ realtimeInput: { activityStart: {} } });
  } else {
    send({ realtimeInput: { activityEnd: {} } });
    state.userEnd = { at: performance.now(), by: "push-to-talk" };
  }
}

function sendText(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !state.connected) return;
  $("text").value = "";
  state.userBubble = null;
  userSays(text);
  state.userBubble = null;
  state.userEnd = { at: performance.now(), by: "text" };
  send({ clientContent: { turns: [{ role: "user", parts: [{ text }] }], turnComplete: true } });
}

async function toggleFrames(kind) {
  if (state.frames[kind]) {
    stopFrames(kind);
    syncButtons();
    return;
  }
  const other = kind === "camera" ? "screen" : "camera";
  stopFrames(other);
  const source = new FrameSource(kind, $("preview"), (frame) => {
    state.videoFrames += 1;
    send({ realtimeInput: { video: { data: frame.data, mimeType: frame.mimeType } } });
  });
  state.frames[kind] = source;
  try {
    await source.start(() => { state.frames[kind] = null; syncButtons(); });
    note(`${kind === "camera" ? "Camera" : "Screen sharing"} on: 1 JPEG frame/s`);
  } catch (err) {
    state.frames[kind] = null;
    note(`${kind} unavailable: ${err.message}`, "error");
  }
  syncButtons();
}

function stopFrames(kind) {
  if (state.frames[kind]) state.frames[kind].stop();
  state.frames[kind] = null;
}

function stopAudio() {
  if (state.player) state.player.flush();
  if (state.turn) state.turn.stopped = true; // the rest of this turn's audio is not played
  note("Playback stopped");
}

// ---- rendering --------------------------------------------------------------------------------------------

function entry(kind, text) {
  const div = document.createElement("div");
  div.className = `entry ${kind}`;
  div.textContent = text;
  $("transcript").append(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function note(text, kind = "") {
  entry(`note ${kind}`, text);
}

function userSays(text) {
  if (!state.userBubble) state.userBubble = entry("user", "");
  state.userBubble.textContent += text;
}

function modelSays(text, kind = "") {
  if (!state.modelBubble || state.modelBubble.dataset.kind !== kind) {
    state.modelBubble = entry(`model ${kind}`, "");
    state.modelBubble.dataset.kind = kind;
  }
  state.modelBubble.textContent += text;
}

function renderGrounding(meta) {
  const sources = (meta.groundingChunks || []).map((c) => (c.web ? `${c.web.title || ""} ${c.web.uri}` : "")).filter(Boolean);
  entry("sources", `Searched: ${(meta.webSearchQueries || []).join("; ")}\n${sources.join("\n")}`);
}

function renderUsage(usage) {
  const rows = [["prompt", usage.promptTokenCount], ["response", usage.responseTokenCount], ["total", usage.totalTokenCount]];
  for (const d of usage.promptTokensDetails || []) rows.push([`· prompt ${d.modality.toLowerCase()}`, d.tokenCount]);
  for (const d of usage.responseTokensDetails || []) rows.push([`· response ${d.modality.toLowerCase()}`, d.tokenCount]);
  $("usage").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", k), el("dd", v === undefined ? "–" : String(v))]));
}

function renderLatency(turn) {
  const ms = (v) => (v === null ? "–" : `${v} ms`);
  const row = el("tr", "");
  row.append(el("td", String(turn.n)), el("td", turn.endedBy), el("td", ms(turn.firstAudioMs)), el("td", ms(turn.firstTextMs)),
    el("td", `${turn.audioSeconds.toFixed(1)} s${turn.interrupted ? " ✂" : ""}`));
  $("latency").tBodies[0].prepend(row);
}

function renderLogRow(dir, msg) {
  const keys = Object.keys(msg);
  const inner = msg[keys[0]] && typeof msg[keys[0]] === "object" ? Object.keys(msg[keys[0]]) : [];
  const li = el("li", `${dir === "send" ? "→" : "←"} ${keys.join(",")}${inner.length ? " {" + inner.join(",") + "}" : ""}`);
  li.className = dir;
  li.title = JSON.stringify(msg).slice(0, 2000);
  const log = $("log");
  log.prepend(li);
  while (log.childElementCount > LOG_ROWS) log.lastElementChild.remove();
}

function el(tag, text) {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

function describeSetup(setup) {
  const g = setup.generationConfig || {};
  const voice = g.speechConfig ? ` · voice ${g.speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName}` : "";
  const tools = (setup.tools || []).map((t) => Object.keys(t)[0]).join(", ");
  return `${g.responseModalities.join(",")}${voice}${tools ? " · tools " + tools : ""}`;
}

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status").textContent = text;
}

function syncButtons() {
  const c = state.connected;
  const ptt = formValues().pushToTalk;
  $("connect").disabled = c;
  $("disconnect").disabled = !c;
  $("mic").disabled = !c && !state.mic;
  $("mic").textContent = state.mic ? "Mic on" : "Mic off";
  $("mic").classList.toggle("on", Boolean(state.mic));
  $("talk").disabled = !c || !ptt || !state.mic;
  $("camera").disabled = !c;
  $("screen").disabled = !c;
  $("camera").classList.toggle("on", Boolean(state.frames.camera));
  $("screen").classList.toggle("on", Boolean(state.frames.screen));
  $("stop").disabled = !c;
  $("text").disabled = !c;
  $("send").disabled = !c;
}

function onPlayback(playerState) {
  $("stop").classList.toggle("on", playerState.queued > 0);
}

function downloadLog() {
  const blob = new Blob([state.log.toJSONL()], { type: "application/x-ndjson" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `localive-session-${new Date().toISOString().replace(/[:.]/g, "-")}.jsonl`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---- wiring -----------------------------------------------------------------------------------------------

function wire() {
  $("connect").onclick = connect;
  $("disconnect").onclick = disconnect;
  $("mic").onclick = toggleMic;
  $("camera").onclick = () => toggleFrames("camera");
  $("screen").onclick = () => toggleFrames("screen");
  $("stop").onclick = stopAudio;
  $("download").onclick = downloadLog;
  $("composer").onsubmit = sendText;
  const talkButton = $("talk");
  talkButton.onpointerdown = () => talk(true);
  talkButton.onpointerup = () => talk(false);
  talkButton.onpointerleave = () => talk(false);
  $("model").addEventListener("change", onModelChange);
  $("modality").addEventListener("change", onModalityChange);
  $("settings").addEventListener("change", (event) => {
    syncButtons();
    reconnect(`${event.target.id} changed`);
  });
  $("settings").onsubmit = (event) => event.preventDefault();
}

// What the page shows, for people debugging it and for the browser tests.
window.playground = {
  state,
  stats() {
    const p = state.player ? state.player.state : { queued: 0, played: 0, dropped: 0, flushes: 0, flushedSamples: 0 };
    return {
      connected: state.connected, setup: state.setup, lastClose: state.lastClose, turns: state.turns,
      turnOpen: Boolean(state.turn), playback: { ...p }, micOn: Boolean(state.mic), videoFrames: state.videoFrames,
      logLines: state.log.lines.length,
    };
  },
};

wire();
loadConfig().then(syncButtons, (err) => setStatus("error", `could not load the server's settings: ${err.message}`));
