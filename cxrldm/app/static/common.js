"use strict";
// Shared by the pages: JSON requests with one-line errors, and polling a job to its end.
async function request(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || response.status + " " + response.statusText);
  return body;
}

async function follow(job, progress, status) {
  for (;;) {
    progress.value = job.total ? job.done / job.total : 0;
    status.textContent = job.state === "queued" ? "waiting for the model..." :
      job.state === "running" ? `step ${job.done} of ${job.total}` : job.state;
    if (job.state === "done") return job;
    if (job.state === "error") throw new Error(job.message);
    await new Promise(resolve => setTimeout(resolve, 250));
    job = await request(`/api/jobs/${job.id}`);
  }
}

function settingsTable(table, settings) {
  table.replaceChildren(...Object.entries(settings).map(([key, value]) => {
    const row = document.createElement("tr");
    const th = document.createElement("th"), td = document.createElement("td");
    th.textContent = key; td.textContent = value;
    row.append(th, td);
    return row;
  }));
}

function figure(src, caption) {
  const fig = document.createElement("figure"), img = document.createElement("img"), cap = document.createElement("figcaption");
  img.src = src; img.alt = caption; cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

// The loaded models' profile (cxrldm/app/profile.py): the form's defaults, and the data the models know.
async function applyProfile(tool) {
  const {profile} = await request("/api/status");
  for (const [key, value] of Object.entries(profile[tool])) {
    const input = document.getElementById(key);
    if (input) input.value = value;
  }
  document.getElementById("models").textContent =
    `Models trained on ${profile.trained_on}. Default settings: ${profile.settings_from}.`;
  return profile;
}

// A failed or refused request leaves nothing of an earlier result on the page.
function clearResult(progress) {
  document.getElementById("result").classList.add("hidden");
  progress.value = 0;
}

function showError(status, message) {
  status.textContent = message;
  status.className = "status error";
}

// The browser refuses a form with a bad value without a request: say which value, in the status line.
function reportInvalid(form, status, progress) {
  form.addEventListener("invalid", event => {
    const label = event.target.closest("label");
    clearResult(progress);
    const name = label ? label.firstChild.textContent.trim() : event.target.id;
    showError(status, `${name}: ${event.target.validationMessage}`);
  }, true);
}
