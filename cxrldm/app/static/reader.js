"use strict";
const $ = id => document.getElementById(id);
const base = location.pathname.replace(/\/+$/, "");   // /study/<token>
let state = null;

function show(next) {
  state = next;
  $("progress-text").textContent = `${state.answered} of ${state.total} answered`;
  $("status").textContent = "";
  if (state.film === null) {
    $("film-section").classList.add("hidden");
    $("done").classList.remove("hidden");
    return;
  }
  $("done").classList.add("hidden");
  $("film-section").classList.remove("hidden");
  $("film").src = `${base}/film/${state.film}.png`;
  $("film").alt = `film ${state.index + 1} of ${state.total}`;
  $("message").textContent = `Film ${state.index + 1} of ${state.total}`;
  $("form").reset();
  if (!$("findings").children.length) {
    for (const finding of state.findings) {
      const label = document.createElement("label"), box = document.createElement("input");
      box.type = "checkbox"; box.name = "finding"; box.value = finding; box.disabled = true;
      label.append(box, " " + finding);
      $("findings").append(label, document.createElement("br"));
    }
  }
  const previous = state.previous;
  if (previous) {
    document.querySelector(`input[name=answer][value=${previous.answer}]`).checked = true;
    document.querySelector(`input[name=confidence][value="${previous.confidence}"]`).checked = true;
    $("give-findings").checked = !!previous.findings_given;
    const ticked = previous.findings_answered ? previous.findings_answered.split(";") : [];
    for (const box of document.querySelectorAll("input[name=finding]")) box.checked = ticked.includes(box.value);
  }
  toggleFindings();
  $("back").disabled = state.index === 0;
}

function toggleFindings() {
  for (const box of document.querySelectorAll("input[name=finding]")) box.disabled = !$("give-findings").checked;
}
$("give-findings").addEventListener("change", toggleFindings);

async function load(index) {
  try {
    show(await request(`${base}/state` + (index === undefined ? "" : `?index=${index}`)));
  } catch (error) {
    $("message").textContent = error.message;
    $("message").className = "error";
    $("film-section").classList.add("hidden");
  }
}

$("form").addEventListener("submit", async event => {
  event.preventDefault();
  const form = new FormData($("form"));
  const body = {film: state.film, answer: form.get("answer"), confidence: +form.get("confidence"),
                findings: $("give-findings").checked ? form.getAll("finding") : null};
  $("submit").disabled = true;
  try {
    show(await request(`${base}/answer`, {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify(body)}));
  } catch (error) {
    $("status").textContent = error.message;
    $("status").className = "status error";
  } finally {
    $("submit").disabled = false;
  }
});
$("back").addEventListener("click", () => load(state.index - 1));
$("review").addEventListener("click", () => load(state.total - 1));
load();
