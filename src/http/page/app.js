// spectrald live page: camera list from /api/v1/cameras, records from the event stream
// (spectrald.landmarks/v2), each spectrum's newest image from
// /api/v1/cameras/ID/SPECTRUM.png drawn on a canvas with the record of the same sequence on
// top: every face's box (coloured by track, as in the PNG snapshots), track id, 68
// landmarks and, on thermal, its temperature.
// The API token (when the daemon has one) comes from the URL fragment (#token=...) or
// the form, and goes in an Authorization header; EventSource cannot send headers, so
// the stream is read with fetch.
"use strict";

// One colour per track (id modulo 6), the same as src/render.rs.
const TRACK_COLOURS = ["rgb(0,255,0)", "rgb(255,200,0)", "rgb(255,0,255)", "rgb(0,160,255)",
  "rgb(255,120,60)", "rgb(160,255,160)"];
const POINT = "rgb(255,40,40)";
const CANTHUS = "rgb(0,200,255)";
const INNER_CANTHI = [39, 42];
const KEEP_RECORDS = 200;

let token = new URLSearchParams(location.hash.slice(1)).get("token") || sessionStorage.getItem("spectrald-token") || "";
const cameras = new Map(); // id -> view state
let framesDrawn = 0;

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function setConnection(ok, text) {
  const el = document.getElementById("connection");
  el.textContent = text;
  el.className = ok ? "ok" : "bad";
}

function askToken() {
  const form = document.getElementById("token-form");
  form.style.display = "flex";
  form.onsubmit = (e) => {
    e.preventDefault();
    token = document.getElementById("token").value;
    sessionStorage.setItem("spectrald-token", token);
    form.style.display = "none";
    start();
  };
}

function cameraView(id) {
  let view = cameras.get(id);
  if (view) return view;
  const section = document.createElement("section");
  section.className = "camera";
  section.dataset.camera = id;
  section.dataset.framesDrawn = "0";
  section.innerHTML = `<h2></h2><div class="views"></div><div class="stats"></div>`;
  section.querySelector("h2").textContent = id;
  document.getElementById("cameras").appendChild(section);
  view = { id, section, records: new Map(), spectra: {}, latestSequence: -1 };
  for (const spectrum of ["visible", "thermal"]) {
    const figure = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.width = 320; canvas.height = 240;
    canvas.dataset.spectrum = spectrum;
    const caption = document.createElement("figcaption");
    caption.textContent = spectrum;
    figure.append(canvas, caption);
    section.querySelector(".views").appendChild(figure);
    view.spectra[spectrum] = { canvas, caption, busy: false, shownSequence: -1 };
  }
  cameras.set(id, view);
  return view;
}

// Draws every face of one spectrum; returns how many landmark points it drew.
function drawMarks(ctx, spec, scale) {
  if (!spec || !spec.faces) return 0;
  let drawn = 0;
  const r = Math.max(2, Math.round(ctx.canvas.width / 200));
  for (const face of spec.faces) {
    const colour = TRACK_COLOURS[(face.track_id || 0) % TRACK_COLOURS.length];
    const b = face.box;
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    ctx.strokeRect(b.x * scale, b.y * scale, b.w * scale, b.h * scale);
    if (face.track_id != null) {
      ctx.font = "bold 12px sans-serif";
      const label = `#${face.track_id}`;
      const y = Math.max(12, b.y * scale - 2);
      ctx.fillStyle = "rgba(0,0,0,0.6)";
      ctx.fillRect(b.x * scale, y - 12, ctx.measureText(label).width + 4, 14);
      ctx.fillStyle = colour;
      ctx.fillText(label, b.x * scale + 2, y);
    }
    for (const [i, [x, y]] of (face.landmarks || []).entries()) {
      ctx.fillStyle = INNER_CANTHI.includes(i) ? CANTHUS : POINT;
      // Whole-pixel squares: exact colours, no antialiasing (also what tests look for).
      ctx.fillRect(Math.round((x + 0.5) * scale) - r, Math.round((y + 0.5) * scale) - r, 2 * r, 2 * r);
      drawn += 1;
    }
  }
  return drawn;
}

// The warmest face's reading (canthus when known, else its box maximum).
function temperatureText(record) {
  const faces = (record.spectra && record.spectra.thermal && record.spectra.thermal.faces) || [];
  const values = faces.map((f) => f.temperature && (f.temperature.canthus_max ?? f.temperature.box_max))
    .filter((v) => v != null);
  if (!values.length) return null;
  return `${Math.max(...values).toFixed(1)} °C`;
}

async function refreshImage(view, spectrum) {
  const slot = view.spectra[spectrum];
  if (slot.busy || view.latestSequence <= slot.shownSequence) return;
  slot.busy = true;
  try {
    const response = await fetch(`/api/v1/cameras/${encodeURIComponent(view.id)}/${spectrum}.png`, { headers: headers(), cache: "no-store" });
    if (!response.ok) return;
    const sequence = Number(response.headers.get("X-Sequence"));
    const bitmap = await createImageBitmap(await response.blob());
    const record = view.records.get(sequence);
    if (!record) return; // older than what the page keeps; the next one will match
    const canvas = slot.canvas;
    if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas.width = bitmap.width; canvas.height = bitmap.height;
    }
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(bitmap, 0, 0);
    const drawn = drawMarks(ctx, record.spectra[spectrum], 1);
    const temperature = spectrum === "thermal" ? temperatureText(record) : null;
    if (temperature) {
      // Bottom-left: the track labels sit above the boxes, near the top.
      const y = canvas.height - 26;
      ctx.font = "bold 16px sans-serif";
      ctx.fillStyle = "rgba(0,0,0,0.6)";
      ctx.fillRect(4, y, 84, 22);
      ctx.fillStyle = "#fff";
      ctx.fillText(temperature, 8, y + 17);
    }
    slot.shownSequence = sequence;
    slot.caption.textContent = `${spectrum} · #${sequence}` + (temperature ? ` · ${temperature}` : "");
    canvas.dataset.sequence = String(sequence);
    canvas.dataset.landmarks = String(drawn);
    canvas.dataset.faces = String((record.spectra[spectrum] && record.spectra[spectrum].faces || []).length);
    if (temperature) canvas.dataset.temperature = temperature;
    framesDrawn += 1;
    view.section.dataset.framesDrawn = String(Number(view.section.dataset.framesDrawn) + 1);
    document.body.dataset.framesDrawn = String(framesDrawn);
  } catch (e) {
    console.warn("image", view.id, spectrum, e);
  } finally {
    slot.busy = false;
  }
}

function onRecord(record) {
  const view = cameraView(record.camera);
  view.records.set(record.sequence, record);
  if (view.records.size > KEEP_RECORDS) {
    view.records.delete(view.records.keys().next().value);
  }
  view.latestSequence = Math.max(view.latestSequence, record.sequence);
  for (const spectrum of Object.keys(record.spectra || {})) refreshImage(view, spectrum);
}

async function readStream() {
  for (;;) {
    try {
      const response = await fetch("/api/v1/landmarks/stream", { headers: headers() });
      if (response.status === 401) { setConnection(false, "token needed"); askToken(); return; }
      if (!response.ok) throw new Error("HTTP " + response.status);
      setConnection(true, "live");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data += line.slice(5).replace(/^ /, "");
          }
          if (event === "landmarks" && data) onRecord(JSON.parse(data));
        }
      }
      setConnection(false, "stream ended; reconnecting…");
    } catch (e) {
      setConnection(false, "disconnected; reconnecting…");
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function refreshCameras() {
  try {
    const response = await fetch("/api/v1/cameras", { headers: headers(), cache: "no-store" });
    if (!response.ok) return;
    for (const camera of await response.json()) {
      const view = cameraView(camera.id);
      const drops = Object.entries(camera.dropped).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
      const streams = Object.entries(camera.streams).map(([k, s]) => `${k} ${s.state}`).join(", ");
      const stats = view.section.querySelector(".stats");
      stats.textContent = `${camera.fps.toFixed(1)} fps · published ${camera.published} · dropped ${drops}` +
        (streams ? ` · ${streams}` : "") + (camera.ready ? "" : ` · NOT READY: ${camera.detail}`);
      stats.classList.toggle("notready", !camera.ready);
      view.section.dataset.fps = String(camera.fps);
    }
  } catch (e) {
    console.warn("cameras", e);
  }
}

function start() {
  readStream();
  refreshCameras();
  setInterval(refreshCameras, 1000);
}

start();
