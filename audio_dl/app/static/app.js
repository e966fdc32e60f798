"use strict";
// The page's behaviour: tabs, an on-screen piano (mouse + computer keys) that records a primer,
// and two forms that call the server's /api/melody and /api/denoise. All audio processing and
// music generation happen on the server, through the same library functions as the CLIs.

const $ = (id) => document.getElementById(id);
const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
const COMPUTER_KEYS = "awsedftgyhujk"; // C .. C an octave up
let octaveBase = 60; // MIDI pitch of the leftmost C
let recording = false;
let recorded = []; // {pitch, start, end} in seconds
const sounding = new Map(); // pitch -> {started, stop}
const heldKeys = new Map(); // computer key -> the pitch it is playing
let audioContext = null;

function showError(id, message) { $(id).textContent = message || ""; }
function busy(on) { $("busy").hidden = !on; }

// --- tabs ----------------------------------------------------------------------------------------
document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
  document.querySelectorAll(".page").forEach((p) => { p.hidden = p.id !== tab.dataset.page; });
}));

// --- piano ---------------------------------------------------------------------------------------
function noteName(pitch) { return NAMES[pitch % 12] + (Math.floor(pitch / 12) - 1); }

function buildKeyboard() {
  const keyboard = $("keyboard");
  keyboard.innerHTML = "";
  let whiteIndex = 0;
  for (let pitch = octaveBase; pitch <= octaveBase + 24; pitch++) {
    const black = NAMES[pitch % 12].includes("#");
    const key = document.createElement("div");
    key.className = "key " + (black ? "black" : "white");
    key.dataset.pitch = pitch;
    key.textContent = black ? "" : noteName(pitch);
    key.style.left = black ? `${whiteIndex * 40 - 13}px` : `${whiteIndex * 40}px`;
    if (!black) whiteIndex++;
    key.addEventListener("mousedown", (e) => { e.preventDefault(); noteOn(pitch); });
    key.addEventListener("mouseup", () => noteOff(pitch));
    key.addEventListener("mouseleave", () => noteOff(pitch));
    keyboard.appendChild(key);
  }
}

function noteOn(pitch) {
  if (sounding.has(pitch)) return;
  audioContext = audioContext || new AudioContext();
  const oscillator = audioContext.createOscillator();
  const gain = audioContext.createGain();
  oscillator.type = "triangle";
  oscillator.frequency.value = 440 * Math.pow(2, (pitch - 69) / 12);
  gain.gain.setValueAtTime(0.25, audioContext.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.02, audioContext.currentTime + 1.5);
  oscillator.connect(gain).connect(audioContext.destination);
  oscillator.start();
  sounding.set(pitch, { started: performance.now() / 1000, stop: () => oscillator.stop() });
  const key = document.querySelector(`.key[data-pitch="${pitch}"]`);
  if (key) key.classList.add("down");
}

function noteOff(pitch) {
  const note = sounding.get(pitch);
  if (!note) return;
  note.stop();
  sounding.delete(pitch);
  const key = document.querySelector(`.key[data-pitch="${pitch}"]`);
  if (key) key.classList.remove("down");
  if (recording) {
    recorded.push({ pitch, start: note.started, end: performance.now() / 1000 });
    $("recorded").textContent = `${recorded.length} notes recorded: ` + recorded.map((n) => noteName(n.pitch)).join(" ");
  }
}

document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.repeat) return;
  const key = e.key.toLowerCase();
  if (key === "z" || key === "x") {
    octaveBase = Math.min(84, Math.max(36, octaveBase + (key === "z" ? -12 : 12)));
    buildKeyboard();
    return;
  }
  const index = COMPUTER_KEYS.indexOf(key);
  if (index >= 0) { heldKeys.set(key, octaveBase + index); noteOn(octaveBase + index); }
});
document.addEventListener("keyup", (e) => {  // the pitch the key started, even if the octave changed since
  const key = e.key.toLowerCase();
  if (heldKeys.has(key)) { noteOff(heldKeys.get(key)); heldKeys.delete(key); }
});

$("record").addEventListener("click", () => {
  recording = !recording;
  if (recording) { recorded = []; $("primer-text").value = ""; $("recorded").textContent = "recording… play now"; }
  $("record").classList.toggle("recording", recording);
  $("record").textContent = recording ? "■ Stop" : "● Record";
});
$("clear").addEventListener("click", () => { recorded = []; $("recorded").textContent = "0 notes recorded"; });
$("old-macdonald").addEventListener("click", () => { $("primer-text").value = "G4 G4 G4 D4 E4 E4 D4:2"; });
$("temperature").addEventListener("input", () => {
  $("temperature-value").textContent = Number($("temperature").value).toFixed(2);
});

async function postJSON(url, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return readResponse(response);
}

async function readResponse(response) {
  let data;
  try { data = await response.json(); } catch { data = { error: `server answered ${response.status}` }; }
  if (!response.ok || data.error) throw new Error(data.error || `server answered ${response.status}`);
  return data;
}

$("make-tune").addEventListener("click", async () => {
  showError("piano-error", "");
  const text = $("primer-text").value.trim();
  const body = { temperature: Number($("temperature").value), seed: Number($("seed").value), qpm: Number($("qpm").value) };
  if (text) body.text = text; else body.notes = recorded;
  busy(true);
  try {
    const tune = await postJSON("/api/melody", body);
    $("piano-roll").src = tune.piano_roll;
    $("tune-audio").src = tune.wav;
    $("download-midi").href = tune.midi;
    $("download-wav").href = tune.wav;
    const shifted = tune.transposed ? `, your notes transposed ${tune.transposed > 0 ? "+" : ""}${tune.transposed}` : "";
    const chords = tune.chord_notes_left_out ?
      `, ${tune.chord_notes_left_out} note(s) under the top of a chord left out (the network plays one line)` : "";
    const grid = tune.notes_moved_to_grid ?
      `, ${tune.notes_moved_to_grid} note(s) moved onto the 1/${4 * tune.steps_per_quarter}-note grid` +
      (tune.notes_dropped_by_grid ? ` (${tune.notes_dropped_by_grid} dropped: of notes sharing a step the longest is kept)` : "") : "";
    const spread = tune.notes_spread_by_grid ?
      `, ${tune.notes_spread_by_grid} note(s) were played faster than the 1/${4 * tune.steps_per_quarter}-note grid: each moved a step after the one before` : "";
    const rest = tune.rest_dropped ? ", the rest at the end of your notes dropped (the network goes on from your last note)" : "";
    $("tune-summary").textContent = `${tune.primer.length} notes of yours (red) + ${tune.generated.length} by the network (blue)` +
      (tune.ended ? ", which ended the tune by itself" : "") + shifted + chords + grid + spread + rest + ".";
    $("piano-result").hidden = false;
  } catch (error) {
    showError("piano-error", error.message);
  } finally { busy(false); }
});

// --- denoiser ------------------------------------------------------------------------------------
let signals = {};
$("strength").addEventListener("input", () => { $("strength-value").textContent = `${$("strength").value} dB`; });

$("denoise-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("denoise-error", "");
  busy(true);
  try {
    const response = await fetch("/api/denoise", { method: "POST", body: new FormData($("denoise-form")) });
    signals = await readResponse(response);
    $("spectrograms").src = signals.spectrograms;
    $("download-denoised").href = signals.denoised;
    document.querySelector('.play[data-signal="clean"]').hidden = !signals.clean;
    $("denoise-audio").src = signals.denoised;
    $("denoise-result").hidden = false;
  } catch (error) {
    showError("denoise-error", error.message);
  } finally { busy(false); }
});

document.querySelectorAll(".play").forEach((button) => button.addEventListener("click", () => {
  const audio = $("denoise-audio");
  audio.src = signals[button.dataset.signal];
  audio.dataset.playing = button.dataset.signal;
  audio.play().catch(() => {});
}));

async function init() {
  buildKeyboard();
  const status = await (await fetch("/api/status")).json();
  for (const name of status.samples) $("sample").add(new Option(name, name));
  for (const name of status.noises) $("noise").add(new Option(name, name));
  if (!status.melody.ready) showError("piano-error", `melody model unavailable: ${status.melody.problem}`);
  if (!status.denoiser.ready) showError("denoise-error", `denoiser unavailable: ${status.denoiser.problem}`);
}
init();
