"use strict";
const $ = id => document.getElementById(id);
const canvas = $("canvas"), context = canvas.getContext("2d");
let film = null, image = null, edit = null, keep = null, overlay = null, overlayPixels = null, painting = false;
let last = null;     // the stroke's previous point: the brush is drawn along the way from there

applyProfile("edit").then(profile => {
  $("phantoms").classList.toggle("hidden", !profile.phantoms);
  $("go").disabled = false;
}, error => showError($("upload-status"), error.message));
reportInvalid($("form"), $("status"), $("progress"));

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  $("upload-status").className = "status";
  $("upload-status").textContent = "uploading...";
  clearResult($("progress"));
  try {
    film = await request("/api/films", {method: "POST", body: form});
  } catch (error) {
    showError($("upload-status"), error.message);
    $("painter").classList.add("hidden");
    return;
  }
  image = new Image();
  image.onload = () => {
    // masks at the film's size, or scaled so the longer side is 1024 (the aspect ratio is kept)
    const scale = Math.min(1, 1024 / Math.max(film.width, film.height));
    canvas.width = Math.round(film.width * scale);
    canvas.height = Math.round(film.height * scale);
    edit = new Uint8Array(canvas.width * canvas.height);
    keep = new Uint8Array(canvas.width * canvas.height);
    overlay = document.createElement("canvas");
    overlay.width = canvas.width; overlay.height = canvas.height;
    overlayPixels = overlay.getContext("2d").createImageData(canvas.width, canvas.height);
    $("upload-status").textContent = `${film.name}: ${film.width} x ${film.height} pixels; paint the edit mask`;
    $("painter").classList.remove("hidden");
    redraw();
  };
  image.src = `/api/films/${film.film}`;
});

function redraw() {
  const p = overlayPixels.data;
  for (let i = 0; i < edit.length; i++) {
    const k = keep[i], e = edit[i] && !k;
    p[4 * i] = e ? 230 : 0; p[4 * i + 1] = e ? 40 : 110; p[4 * i + 2] = e ? 30 : 255;
    p[4 * i + 3] = (e || k) ? 110 : 0;
  }
  overlay.getContext("2d").putImageData(overlayPixels, 0, 0);
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  context.drawImage(overlay, 0, 0);
  const side = Math.min(canvas.width, canvas.height);
  context.setLineDash([6, 4]); context.strokeStyle = "#ffd400"; context.lineWidth = Math.max(1, side / 256);
  context.strokeRect((canvas.width - side) / 2, (canvas.height - side) / 2, side, side);
}

function paint(event) {
  const box = canvas.getBoundingClientRect();
  const x = (event.clientX - box.left) * canvas.width / box.width;
  const y = (event.clientY - box.top) * canvas.height / box.height;
  const radius = +$("brush").value * canvas.width / 512 / 2;
  const from = last || {x, y};
  const dabs = Math.max(1, Math.ceil(Math.hypot(x - from.x, y - from.y) / Math.max(0.5, radius / 2)));
  for (let k = 1; k <= dabs; k++) dab(from.x + (x - from.x) * k / dabs, from.y + (y - from.y) * k / dabs, radius);
  last = {x, y};
  redraw();
}

function dab(x, y, radius) {
  const tool = document.querySelector("input[name=tool]:checked").value;
  for (let j = Math.max(0, Math.floor(y - radius)); j <= Math.min(canvas.height - 1, y + radius); j++) {
    for (let i = Math.max(0, Math.floor(x - radius)); i <= Math.min(canvas.width - 1, x + radius); i++) {
      if ((i - x) ** 2 + (j - y) ** 2 > radius ** 2) continue;
      const at = j * canvas.width + i;
      if (tool === "edit") edit[at] = 1;
      else if (tool === "keep") keep[at] = 1;
      else { edit[at] = 0; keep[at] = 0; }
    }
  }
}

canvas.addEventListener("pointerdown", event => {
  painting = true; last = null; canvas.setPointerCapture(event.pointerId); paint(event);
});
canvas.addEventListener("pointermove", event => { if (painting) paint(event); });
canvas.addEventListener("pointerup", () => { painting = false; last = null; });
$("clear").addEventListener("click", () => { edit.fill(0); keep.fill(0); redraw(); });

function maskBlob(mask) {
  const out = document.createElement("canvas");
  out.width = canvas.width; out.height = canvas.height;
  const data = out.getContext("2d").createImageData(canvas.width, canvas.height);
  for (let i = 0; i < mask.length; i++) {
    const v = mask[i] ? 255 : 0;
    data.data[4 * i] = v; data.data[4 * i + 1] = v; data.data[4 * i + 2] = v; data.data[4 * i + 3] = 255;
  }
  out.getContext("2d").putImageData(data, 0, 0);
  return new Promise(resolve => out.toBlob(resolve, "image/png"));
}

$("form").addEventListener("submit", async event => {
  event.preventDefault();
  const form = new FormData();
  form.append("film", film.film);
  for (const key of ["prompt", "strength", "guidance", "steps", "seed"]) form.append(key, $(key).value);
  form.append("edit_mask", await maskBlob(edit), "edit_mask.png");
  if (keep.some(v => v)) form.append("keep_mask", await maskBlob(keep), "keep_mask.png");
  $("go").disabled = true;
  $("status").className = "status";
  clearResult($("progress"));
  try {
    let job = await request("/api/edit", {method: "POST", body: form});
    job = await follow(job, $("progress"), $("status"));
    const files = `/api/jobs/${job.id}/files/`, result = job.result;
    $("images").replaceChildren(figure(files + result.shown, "original"), figure(files + result.edited, "edited"),
                                figure(files + result.difference, "difference (edited - original on grey)"));
    $("changed").textContent = `${result.changed} of ${result.pixels} pixels changed`;
    $("edited").href = files + result.edited;
    $("edit-mask").href = files + "edit_mask.png";
    $("keep-mask").href = files + "keep_mask.png";
    $("keep-mask").classList.toggle("hidden", !result.masks.includes("keep_mask.png"));
    $("manifest").href = files + "manifest.csv";
    $("zip").href = `/api/jobs/${job.id}/download.zip`;
    settingsTable($("row"), result.row);
    $("command").textContent = result.command;
    $("result").classList.remove("hidden");
    $("status").textContent = "done";
  } catch (error) {
    clearResult($("progress"));
    showError($("status"), error.message);
  } finally {
    $("go").disabled = false;
  }
});
