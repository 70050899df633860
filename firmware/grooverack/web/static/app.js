// The module's page: it only asks (GET /api/state, the websocket) and tells (POST /api/...).
// The module's state is the single source of truth; the page draws what it is told.
"use strict";

const $ = (id) => document.getElementById(id);
const STEPS = 32;
let board = null, state = null, received = 0;
const sliders = {};          // control name -> {input, output, touched}
const buttonsByAction = {};  // press action -> button
let pending = {}, inFlight = false;
const movedAt = {};          // control name -> when the page moved it (performance.now())
// ms from a control moved in the page to the module's answer that its engine applied it (the
// newest 1000; benchmarks/bench_web.py reads them)
window.grooverackControlMs = [];

function say(text) { $("message").textContent = text; $("error").textContent = ""; }
function fail(text) { $("error").textContent = text; }

async function api(method, path, body, raw) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    if (raw) { opts.body = body; } else { opts.body = JSON.stringify(body); opts.headers["content-type"] = "application/json"; }
  }
  const r = await fetch(path, opts);
  const type = r.headers.get("content-type") || "";
  const data = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const allowed = data && data.allowed ? ` (allowed: ${data.allowed})` : "";
    throw new Error(data && data.error ? `${data.field}: ${data.error}${allowed}` : `HTTP ${r.status}`);
  }
  return data;
}

function format(name, value) {
  const c = board.controls[name];
  const unit = c.unit ? " " + c.unit : "";
  return (Math.abs(c.high - c.low) > 10 ? Number(value).toFixed(1) : Number(value).toFixed(2)) + unit;
}

function slider(name, labelText, shift) {
  const c = board.controls[name];
  const wrap = document.createElement("div");
  wrap.className = "control";
  const id = "ctl-" + name.replace(".", "-");
  const label = document.createElement("label");
  label.htmlFor = id; label.textContent = labelText;
  const out = document.createElement("output");
  out.htmlFor = id;
  label.appendChild(out);
  const input = document.createElement("input");
  input.type = "range"; input.id = id; input.min = c.low; input.max = c.high;
  const span = c.high - c.low;
  input.step = span > 100 ? 1 : span > 10 ? 0.5 : 0.01;
  input.value = c.default;
  input.title = c.doc;
  input.addEventListener("input", () => {
    sliders[name].touched = performance.now();
    out.textContent = format(name, input.value);
    send(name, Number(input.value));
  });
  wrap.append(label, input);
  if (shift) {
    const s = document.createElement("span");
    s.className = "shift"; s.textContent = "shift: " + shift;
    wrap.appendChild(s);
  }
  sliders[name] = { input, output: out, touched: 0 };
  out.textContent = format(name, c.default);
  return wrap;
}

// controls: the newest value of each, one request in flight (a slider dragged fast sends the
// value it ends on, not every value it passed); over the open websocket (no HTTP request per
// move), else POST /api/controls
let socket = null, sent = 0;
const acks = {};             // message id -> resolve(answer)
function viaSocket(body) {
  return new Promise((resolve, reject) => {
    const id = ++sent;
    const timer = setTimeout(() => { delete acks[id]; reject(new Error("module: no answer")); }, 3000);
    acks[id] = (answer) => {
      clearTimeout(timer);
      if (answer.error) {
        const allowed = answer.allowed ? ` (allowed: ${answer.allowed})` : "";
        reject(new Error(`${answer.field}: ${answer.error}${allowed}`));
      } else resolve(answer);
    };
    socket.send(JSON.stringify({ id, controls: body }));
  });
}
function send(name, value) {
  pending[name] = value;
  if (!(name in movedAt)) movedAt[name] = performance.now();
  if (!inFlight) flush();
}
async function flush() {
  const body = pending; pending = {};
  if (!Object.keys(body).length) return;
  inFlight = true;
  const moved = {};
  for (const name of Object.keys(body)) { moved[name] = movedAt[name]; delete movedAt[name]; }
  try {
    if (socket && socket.readyState === WebSocket.OPEN) await viaSocket(body);
    else await api("POST", "/api/controls", body);
    const now = performance.now(), out = window.grooverackControlMs;
    for (const name of Object.keys(moved)) out.push(now - moved[name]);
    if (out.length > 1000) out.splice(0, out.length - 1000);
  }
  catch (e) { fail(e.message); }
  inFlight = false;
  if (Object.keys(pending).length) flush();
}

async function press(action) {
  try {
    const r = await api("POST", "/api/press", { button: action });
    say(`${action.replace(/_/g, " ")}: done`);
    return r;
  } catch (e) { fail(e.message); }
}

function button(text, action, shift) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = text;
  if (shift) b.title = "shift: " + shift;
  b.addEventListener("click", () => press(action));
  buttonsByAction[action] = b;
  return b;
}

function titleCase(s) { return s.replace(/[._]/g, " ").replace(/^\w/, (c) => c.toUpperCase()); }

function buildPage() {
  $("board-name").textContent = `${board.name} (${board.kind})`;
  const onPanel = new Set();
  for (const k of board.knobs) {
    if (!k.control || !board.controls[k.control]) continue;
    onPanel.add(k.control);
    $("knobs").appendChild(slider(k.control, k.label, k.shift));
  }
  for (const b of board.buttons) {
    $("buttons").appendChild(button(b.label, b.action, b.shift));
  }
  for (const led of board.leds) {
    const s = document.createElement("span");
    s.innerHTML = `<span class="led" id="led-${led.name}"></span> ${led.label} LED`;
    $("buttons").appendChild(s);
  }
  $("jacks").textContent = board.inputs.length || board.outputs.length ?
    `Inputs: ${board.inputs.join(", ")}. Outputs: ${board.outputs.join(", ")}.` : "";
  for (const name of Object.keys(board.controls)) {
    if (onPanel.has(name)) continue;
    $("more").appendChild(slider(name, board.controls[name].label, ""));
  }
  const extras = [["randomize_a", "Randomize A"], ["randomize_b", "Randomize B"], ["clear", "Clear"],
                  ["record", "Record (cycle)"], ["previous_style", "Previous style"], ["next_style", "Next style"]];
  for (const [action, text] of extras) {
    if (!buttonsByAction[action]) $("extra-buttons").appendChild(button(text, action));
  }
  for (const mode of board.record_modes) {
    const l = document.createElement("label");
    l.innerHTML = `<input type="radio" name="record-mode" value="${mode}"> ${mode}`;
    l.firstChild.addEventListener("change", () => send("record", mode));
    $("record-modes").appendChild(l);
  }
  for (const group of Object.keys(board.groups)) {
    const b = button("Mute " + group, "mute_" + group);
    b.setAttribute("aria-pressed", "false");
    b.title = board.groups[group].join(", ");
    $("mutes").appendChild(b);
  }
  $("style").addEventListener("change", () => send("genre", $("style").value));
  const fill = $("fill");
  const fillTo = (high) => {
    if ((fill.getAttribute("aria-pressed") === "true") === high) return;
    fill.setAttribute("aria-pressed", String(high));
    api("POST", "/api/fill", { high }).catch((e) => fail(e.message));
  };
  fill.addEventListener("pointerdown", () => fillTo(true));
  fill.addEventListener("pointerup", () => fillTo(false));
  fill.addEventListener("pointerleave", () => fillTo(false));
  fill.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "Enter") { e.preventDefault(); fillTo(true); } });
  fill.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") fillTo(false); });
  presetsUi();
  loopUi();
  $("sound").addEventListener("click", toggleSound);
  if (board.kind !== "sim") $("sound-note").textContent = "(the module's jacks play the drums; this is a preview)";
}

// ---------------------------------------------------------------------------------------------
// presets, backup, your own loop

function slotValue() { return Number($("preset-slot").value); }

function presetsUi() {
  const act = (id, fn) => $(id).addEventListener("click", async () => {
    try { say(await fn()); } catch (e) { fail(e.message); }
  });
  act("preset-save", async () => {
    const name = $("preset-name").value;
    await api("POST", `/api/presets/${slotValue()}/save`, name ? { name } : undefined);
    return `preset ${slotValue()} saved`;
  });
  act("preset-recall", async () => { await api("POST", `/api/presets/${slotValue()}/recall`); return `preset ${slotValue()} recalled`; });
  act("preset-rename", async () => { await api("POST", `/api/presets/${slotValue()}/rename`, { name: $("preset-name").value }); return `preset ${slotValue()} renamed`; });
  act("preset-delete", async () => { await api("DELETE", `/api/presets/${slotValue()}`); return `preset ${slotValue()} deleted`; });
  act("preset-export", async () => {
    const data = await api("GET", `/api/presets/${slotValue()}/export`);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 1)], { type: "application/json" }));
    a.download = `grooverack-preset-${String(slotValue()).padStart(2, "0")}.json`;
    a.click();
    return `preset ${slotValue()} exported`;
  });
  $("preset-import").addEventListener("change", async (e) => {
    const file = e.target.files[0]; e.target.value = "";
    if (!file) return;
    let data;
    try { data = JSON.parse(await file.text()); }
    catch (err) { fail(`${file.name}: not JSON (${err.message}); nothing imported`); return; }
    try {
      const r = await api("POST", "/api/presets/import", data);
      say(`${file.name} imported as preset ${r.slot}`);
    } catch (err) { fail(`${file.name} refused: ${err.message}; nothing imported`); }
  });
  $("restore").addEventListener("change", async (e) => {
    const file = e.target.files[0]; e.target.value = "";
    if (!file) return;
    try {
      const r = await api("POST", "/api/restore", await file.arrayBuffer(), true);
      say(`backup restored: ${r.restored} files, presets ${r.presets.join(", ") || "none"}`);
    } catch (err) { fail(`${file.name} refused: ${err.message}; nothing restored`); }
  });
}

async function sendLoop(file) {
  const side = document.querySelector("input[name=loop-slot]:checked").value;
  try {
    const r = await fetch(`/api/loop?slot=${side}`, { method: "POST", body: await file.arrayBuffer(), headers: { "x-filename": file.name } });
    const data = await r.json();
    if (!r.ok) throw new Error(`${data.field}: ${data.error}`);
    say(`${file.name}: ${data.hits} hits over ${data.bars} bar(s) are latent ${side} of preset ${data.preset}`);
  } catch (err) { fail(`${file.name} refused: ${err.message}`); }
}

function loopUi() {
  const zone = $("loop-drop");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files.length) sendLoop(e.dataTransfer.files[0]);
  });
  $("loop-file").addEventListener("change", (e) => {
    const file = e.target.files[0]; e.target.value = "";
    if (file) sendLoop(file);
  });
}

// ---------------------------------------------------------------------------------------------
// drawing the state

function render(s) {
  state = s; received = performance.now() / 1000;
  const now = performance.now();
  for (const [name, v] of Object.entries(s.controls)) {
    const sl = sliders[name];
    if (!sl || now - sl.touched < 600 || document.activeElement === sl.input && inFlight) continue;
    if (Number(sl.input.value) !== v) sl.input.value = v;
    sl.output.textContent = format(name, v);
  }
  const p = s.playing;
  $("p-generation").textContent = `${p.generation}: ${p.why}`;
  $("p-style").textContent = p.style;
  const muted = Object.entries(p.mutes).filter(([, m]) => m).map(([g]) => g);
  $("p-mutes").textContent = muted.length ? muted.join(", ") : "none";
  const c = p.clock;
  $("p-clock").textContent = `${c.running ? "running" : "stopped"}, ${c.driver} (${c.source}), ${c.bpm.toFixed(1)} BPM`;
  $("p-record").textContent = p.record + (p.fill ? ", FILL" : "");
  const name = s.preset.saved.find((x) => x.slot === s.preset.slot);
  $("p-preset").textContent = `slot ${s.preset.slot}` + (name && name.name ? ` “${name.name}”` : "");
  const faults = Object.entries(p.faults).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join(", ");
  $("p-faults").textContent = faults || "none";
  for (const [group, m] of Object.entries(p.mutes)) {
    const b = buttonsByAction["mute_" + group];
    if (b) b.setAttribute("aria-pressed", String(m));
  }
  for (const input of document.querySelectorAll("input[name=record-mode]")) input.checked = input.value === p.record;
  const led = document.getElementById("led-record");
  if (led) led.classList.toggle("on", p.record !== "off");
  const style = $("style");
  if (style.options.length !== s.styles.length) {
    style.innerHTML = "";
    for (const st of s.styles) style.add(new Option(st, st));
  }
  if (document.activeElement !== style) style.value = p.style;
  const list = $("preset-list");
  const items = s.preset.saved.map((x) => `${x.slot}${x.name ? " " + x.name : ""}`);
  if (list.dataset.items !== items.join("|")) {
    list.dataset.items = items.join("|");
    list.innerHTML = "";
    for (const t of items) { const li = document.createElement("li"); li.textContent = t; list.appendChild(li); }
  }
  const hitsPerVoice = s.pattern.hits.map((row) => row.reduce((a, b) => a + b, 0));
  $("pattern-text").textContent = s.voices.map((v, i) => `${v} ${hitsPerVoice[i]}`).join(", ");
  if (window.grooverackFirstPattern === undefined) {
    draw();
    window.grooverackFirstPattern = performance.now();
  }
}

function position() {  // the module's position now, from the last state and its tempo
  if (!state) return 0;
  const c = state.playing.clock;
  if (!c.running) return state.position;
  return state.position + (performance.now() / 1000 - received) * c.bpm / 15;
}

function draw() {
  const canvas = $("pattern"), g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  g.clearRect(0, 0, W, H);
  if (!state) return;
  const left = 90, rows = 10, rowH = (H - 10) / rows, colW = (W - left) / STEPS;
  g.font = "12px system-ui, sans-serif";
  for (let s = 0; s < STEPS; s += 4) {
    g.fillStyle = s % 16 === 0 ? "#2a2e36" : "#1d2026";
    g.fillRect(left + s * colW, 0, colW * 4, rowH * 9);
  }
  const pat = state.pattern;
  for (let v = 0; v < 9; v++) {
    g.fillStyle = "#8a8f98";
    g.fillText(state.voices[v].replace("_", " "), 4, v * rowH + rowH * 0.65);
    for (let s = 0; s < STEPS; s++) {
      if (!pat.hits[v][s]) continue;
      const vel = pat.velocities[v][s], off = pat.offsets[v][s];
      g.fillStyle = `rgba(240,160,48,${0.25 + 0.75 * vel})`;
      g.fillRect(left + (s + off) * colW + 1, v * rowH + 2 + (1 - vel) * (rowH - 4) * 0.5,
                 colW - 2, Math.max(2, vel * (rowH - 4)));
    }
  }
  const gy = 9 * rowH + 6;  // the input groove lane
  g.fillStyle = "#8a8f98";
  g.fillText("groove", 4, gy + rowH * 0.6);
  for (let s = 0; s < STEPS; s++) {
    if (!state.groove.hits[s]) continue;
    const vel = state.groove.velocities[s], off = state.groove.offsets[s];
    g.fillStyle = `rgba(120,200,255,${0.25 + 0.75 * vel})`;
    g.fillRect(left + (s + off) * colW + 1, gy + 2, colW - 2, rowH - 6);
  }
  const at = ((position() % STEPS) + STEPS) % STEPS;
  g.fillStyle = "rgba(255,255,255,0.18)";
  g.fillRect(left + Math.floor(at) * colW, 0, colW, H);
  g.fillStyle = "#fff";
  g.fillRect(left + at * colW, 0, 1.5, H);
}

// ---------------------------------------------------------------------------------------------
// sound: the pattern scheduled a little ahead from the module's position (Web Audio)

const AHEAD_S = 0.12;
let nextStep = null;

function schedule() {
  if (!state || !Drums.running || !state.playing.clock.running) { nextStep = null; return; }
  const perStep = 15 / state.playing.clock.bpm;
  const pos = position(), audioNow = Drums.now;
  if (nextStep === null || nextStep < pos - 1 || nextStep > pos + 4) nextStep = Math.ceil(pos);
  while ((nextStep - pos) * perStep < AHEAD_S) {
    const step = ((nextStep % STEPS) + STEPS) % STEPS;
    // as the player plays the jacks: one voice per output and step (the louder; crash and ride
    // share jack 8 with 8 outputs), nothing for a voice patched nowhere
    const loudest = {};
    for (let v = 0; v < 9; v++) {
      const out = board.voice_outputs ? board.voice_outputs[v] : v + 1;
      if (!out || !state.pattern.hits[v][step]) continue;
      const vel = state.pattern.velocities[v][step];
      if (!(out in loudest) || vel > state.pattern.velocities[loudest[out]][step]) loudest[out] = v;
    }
    for (const v of Object.values(loudest)) {
      const t = audioNow + (nextStep + state.pattern.offsets[v][step] - pos) * perStep;
      Drums.play(v, Math.max(audioNow, t), state.pattern.velocities[v][step]);
    }
    nextStep += 1;
  }
}

async function toggleSound() {
  const b = $("sound");
  if (Drums.running) { await Drums.stop(); b.setAttribute("aria-pressed", "false"); b.textContent = "Play sound in this browser"; }
  else { await Drums.start(); b.setAttribute("aria-pressed", "true"); b.textContent = "Stop sound"; nextStep = null; }
}

// ---------------------------------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/ws`);
  ws.onopen = () => { socket = ws; $("connection").textContent = "connected"; };
  ws.onmessage = (e) => {
    const data = JSON.parse(e.data);
    if ("ack" in data) { const done = acks[data.ack]; delete acks[data.ack]; if (done) done(data); }
    else render(data);
  };
  ws.onclose = () => {
    if (socket === ws) socket = null;
    $("connection").textContent = "connection lost: retrying…"; setTimeout(connect, 1000);
  };
}

// 25 frames a second: the playhead moves smoothly enough, and a Pi's browser (or a busy laptop)
// keeps its CPU for the rest
const FRAME_MS = 40;
let lastFrame = 0;
function frame(now) {
  if (now - lastFrame >= FRAME_MS) { lastFrame = now; draw(); }
  requestAnimationFrame(frame);
}

async function main() {
  try {
    // both at once: the first pattern is drawn one round trip after the page's script runs
    const [b, first] = await Promise.all([api("GET", "/api/board"), api("GET", "/api/state")]);
    board = b;
    buildPage();
    render(first);
  } catch (e) { fail(e.message); return; }
  connect();
  requestAnimationFrame(frame);
  setInterval(schedule, 25);
}
main();
