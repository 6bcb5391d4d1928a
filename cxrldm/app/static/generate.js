"use strict";
const $ = id => document.getElementById(id);

applyProfile("generate").then(() => { $("go").disabled = false; }, error => showError($("status"), error.message));
reportInvalid($("form"), $("status"), $("progress"));

$("form").addEventListener("submit", async event => {
  event.preventDefault();
  const settings = {prompt: $("prompt").value, n: +$("n").value, seed: +$("seed").value,
                    guidance: +$("guidance").value, steps: +$("steps").value, sampler: $("sampler").value};
  $("go").disabled = true;
  $("status").className = "status";
  clearResult($("progress"));
  try {
    let job = await request("/api/generate", {method: "POST", headers: {"Content-Type": "application/json"},
                                              body: JSON.stringify(settings)});
    job = await follow(job, $("progress"), $("status"));
    const files = `/api/jobs/${job.id}/files/`;
    $("images").replaceChildren(...job.result.images.map(image => figure(files + image.file, `seed ${image.seed}`)));
    settingsTable($("settings"), job.settings);
    $("command").textContent = job.result.command;
    $("zip").href = `/api/jobs/${job.id}/download.zip`;
    $("manifest").href = files + "manifest.csv";
    $("result").classList.remove("hidden");
    $("status").textContent = `done: ${job.result.images.length} images`;
  } catch (error) {
    clearResult($("progress"));
    showError($("status"), error.message);
  } finally {
    $("go").disabled = false;
  }
});
