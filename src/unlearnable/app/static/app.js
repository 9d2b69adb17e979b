// The page of `unlearnable app`: uploads, plan, one job at a time, results, check.
// All state lives on the server (jobs, uploads); the page keeps only the ids in the address (#job=...).
"use strict";

const KEY = document.querySelector('meta[name="unlearnable-key"]').content;
const LOCAL = document.querySelector('meta[name="unlearnable-local"]').content === "1";
const $ = (id) => document.getElementById(id);
const state = { info: null, upload: null, job: null, check: null, shown: 0, photos: [], polling: null, names: [], started: null, most: {} };

async function api(method, path, body, raw) {
  const opts = { method, headers: { "X-Unlearnable-Key": KEY } };
  if (body !== undefined) {
    if (raw) { opts.body = body; } else { opts.body = JSON.stringify(body); opts.headers["Content-Type"] = "application/json"; }
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = text; }
  if (!r.ok) { throw new Error((data && data.error) || `${r.status} ${r.statusText}`); }
  return data;
}
const withKey = (path) => `${path}${path.includes("?") ? "&" : "?"}key=${encodeURIComponent(KEY)}`;

function setHash() {
  const parts = [];
  if (state.upload) parts.push(`upload=${state.upload}`);
  if (state.job) parts.push(`job=${state.job}`);
  if (state.check) parts.push(`check=${state.check}`);
  history.replaceState(null, "", "#" + parts.join("&"));
}
function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  state.upload = h.get("upload"); state.job = h.get("job"); state.check = h.get("check");
}

// ------------------------------------------------------------------ choices
function fillChoices() {
  const info = state.info;
  const labels = $("labels");
  labels.innerHTML = "";
  for (const [value, words] of Object.entries(info.labels)) {
    const id = `labels-${value}`;
    const div = document.createElement("div");
    div.className = "choice";
    div.innerHTML = `<input type="radio" name="labels" id="${id}" value="${value}"${value === "folders" ? " checked" : ""}>` +
      `<label for="${id}"><strong>${{ folders: "By folder", one: "One subject", clusters: "By similarity", csv: "From a CSV" }[value] || value}</strong> ${escapeHtml(words)}</label>`;
    labels.appendChild(div);
  }
  labels.addEventListener("change", () => { $("csv-row").hidden = labelMode() !== "csv"; invalidatePlan(); });
  const method = $("method");
  for (const m of info.methods) { method.add(new Option(m.name, m.name)); }
  method.addEventListener("change", () => { fillPresets(); invalidatePlan(); });
  fillPresets();
  $("preset").addEventListener("change", () => { showWords(); invalidatePlan(); });
  for (const [value] of Object.entries(info.formats)) {
    const label = info.format_names[value] || value;
    $("format").add(new Option(label, value)); $("again-format").add(new Option(label, value));
  }
  $("format").addEventListener("change", () => { showWords(); invalidatePlan(); });
  for (const [value] of Object.entries(info.looks)) { $("look").add(new Option(value, value)); }
  $("look").addEventListener("change", () => { showWords(); invalidatePlan(); });
  $("options").addEventListener("input", invalidatePlan);
  $("strip").addEventListener("change", invalidatePlan);
  $("server-folder").addEventListener("input", () => { invalidatePlan(); });
  $("server-folder-row").hidden = !info.folders;
  showWords();
}
function fillPresets() {
  const m = state.info.methods.find((x) => x.name === $("method").value);
  const preset = $("preset");
  preset.innerHTML = "";
  for (const p of m.presets) { preset.add(new Option(p.name, p.name)); }
  showWords();
}
function showWords() {
  const m = state.info.methods.find((x) => x.name === $("method").value);
  $("method-words").textContent = m ? m.words : "";
  const p = m && m.presets.find((x) => x.name === $("preset").value);
  $("preset-words").textContent = p ? p.words : "";
  $("format-words").textContent = state.info.formats[$("format").value] || "";
  $("look-words").textContent = state.info.looks[$("look").value] || "";
}
const labelMode = () => (document.querySelector('input[name="labels"]:checked') || {}).value || "folders";
function parseOptions() {
  const out = {};
  for (const line of $("options").value.split("\n")) {
    const t = line.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i < 1) throw new Error(`an option is name=value, got "${t}"`);
    const v = t.slice(i + 1).trim();
    let value;
    try { value = JSON.parse(v); } catch (e) { value = v; }
    out[t.slice(0, i).trim()] = value;
  }
  return out;
}
function request() {
  const req = { labels: labelMode(), method: $("method").value, preset: $("preset").value, format: $("format").value, look: $("look").value, strip: $("strip").checked, options: parseOptions() };
  const folder = $("server-folder").value.trim();
  if (folder) req.folder = folder;  // photos from that folder; an upload then holds only the CSV
  if (state.upload) req.upload = state.upload;
  return req;
}
function invalidatePlan() { $("start-btn").disabled = true; $("plan").hidden = true; $("plan-error").textContent = ""; state.started = null; }

// ------------------------------------------------------------------ uploads
async function ensureUpload() {
  if (!state.upload) { state.upload = (await api("POST", "/api/uploads")).id; setHash(); }
  return state.upload;
}
// What a computer leaves in folders by itself, never sent: hidden files (.DS_Store) and the server's own list.
const isLitter = (name) => name.split("/").some((p) => p.startsWith(".") || state.info.skipped_names.some((s) => s.toLowerCase() === p.toLowerCase()));
const suffixOf = (name) => { const base = name.split("/").pop(); const i = base.lastIndexOf("."); return i > 0 ? base.slice(i).toLowerCase() : ""; };
async function addFiles(files, stripTop) {
  const all = Array.from(files);
  if (!all.length) return;
  invalidatePlan();
  const nameOf = (f) => {
    let name = f.webkitRelativePath || f.name;
    if (stripTop && name.includes("/")) name = name.slice(name.indexOf("/") + 1);
    return name;
  };
  const known = new Set([...state.info.photo_suffixes, ...Object.keys(state.info.unreadable), ".zip"]);
  const list = all.filter((f) => !isLitter(nameOf(f)) && known.has(suffixOf(nameOf(f))));
  const others = all.filter((f) => !isLitter(nameOf(f)) && !known.has(suffixOf(nameOf(f)))).map(nameOf);
  $("upload-skipped").hidden = !others.length;
  $("upload-skipped").textContent = others.length ? `${others.length} file${others.length === 1 ? " that is not a photo was" : "s that are not photos were"} left out: ${others.slice(0, 5).join(", ")}${others.length > 5 ? ", ..." : ""}.` : "";
  if (!list.length) { await showUpload(); return; }
  const id = await ensureUpload();
  const errors = $("upload-errors");
  let sent = 0;
  for (const f of list) {
    const name = nameOf(f);
    $("upload-status").textContent = `Sending ${sent + 1} of ${list.length}: ${name}`;
    try {
      if (f.name.toLowerCase().endsWith(".zip")) {
        await api("PUT", `/api/uploads/${id}/zip`, f, true);
      } else {
        await api("PUT", `/api/uploads/${id}/photos?name=${encodeURIComponent(name)}`, f, true);
      }
    } catch (e) {
      const li = document.createElement("li");
      li.textContent = e.message.includes(name) ? e.message : `${name}: ${e.message}`;
      errors.appendChild(li);
    }
    sent += 1;
  }
  await showUpload();
}
async function showUpload() {
  $("start-over-btn").hidden = !state.upload;
  if (!state.upload) { showNames([]); return; }
  try {
    const u = await api("GET", `/api/uploads/${state.upload}`);
    const mb = (u.bytes / 2 ** 20).toFixed(1);
    $("upload-status").textContent = `${u.photos} photo${u.photos === 1 ? "" : "s"} ready (${mb} MB).`;
    showNames(u.names);
  } catch (e) { state.upload = null; setHash(); showNames([]); $("start-over-btn").hidden = true; }
}
function removeButton(name) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = "Remove"; b.className = "remove";
  b.setAttribute("aria-label", `Remove ${name}`);
  b.addEventListener("click", () => removePhoto(name));
  return b;
}
function showNames(names) {
  state.names = names;
  $("upload-list-box").hidden = !names.length;
  $("upload-list-summary").textContent = `The photos added (${names.length}): look through them, remove any`;
  const ul = $("upload-list");
  ul.innerHTML = "";
  for (const n of names) {
    const li = document.createElement("li");
    li.appendChild(document.createTextNode(n));
    li.appendChild(removeButton(n));
    ul.appendChild(li);
  }
}
async function removePhoto(name) {
  invalidatePlan();
  try {
    await api("DELETE", `/api/uploads/${state.upload}/photos?name=${encodeURIComponent(name)}`);
    $("upload-errors").innerHTML = "";
  } catch (e) { $("plan-error").textContent = e.message; }
  await showUpload();
  if (!state.names.length) $("upload-status").textContent = "No photos yet.";
}
async function startOver() {
  invalidatePlan();
  const old = state.upload;
  state.upload = null; setHash();
  if (old) { try { await api("DELETE", `/api/uploads/${old}`); } catch (e) { /* kept for a job that reads it */ } }
  $("upload-errors").innerHTML = ""; $("upload-skipped").hidden = true; $("csv-status").textContent = "";
  $("files").value = ""; $("folder-input").value = ""; $("csv-file").value = "";
  $("upload-status").textContent = "No photos yet.";
  await showUpload();
}
function planError(message) {  // the error, with a Remove button for every added photo it names
  const p = $("plan-error");
  p.textContent = message;
  for (const n of state.names.filter((n) => message.includes(n)).slice(0, 5)) {
    const b = removeButton(n);
    b.textContent = `Remove ${n}`;
    p.appendChild(document.createTextNode(" "));
    p.appendChild(b);
  }
}

// ------------------------------------------------------------------ plan and start
function grouping(g) {  // groups the tool made itself: which photo went where, and a warning where they are weak
  if (!g) return "";
  const lists = Object.entries(g.members).map(([name, files]) =>
    `<li><strong>${escapeHtml(name)}</strong> (${files.length}): ${files.map(escapeHtml).join(", ")}</li>`).join("");
  const alone = Object.entries(g.members).filter(([, files]) => files.length === 1).map(([name]) => name);
  let warn = "";
  if (!g.separate) {
    warn += `<p class="warning" role="alert">These photos do not fall into clearly separate groups: the tool split them by force. ` +
      `Someone training on them would label them by what they show, so if they are all of one subject, choose <strong>One subject</strong>; ` +
      `if they show several, put each subject's photos in a folder of its own.</p>`;
  }
  if (alone.length) {
    warn += `<p class="warning" role="alert">${alone.map(escapeHtml).join(", ")} ${alone.length === 1 ? "holds" : "hold"} a single photo: ` +
      `a group of one is rarely a subject anyone would name. Folders of your own fit better.</p>`;
  }
  return `<p>The groups the tool made from your photos:</p><ul class="groups">${lists}</ul>` + warn;
}
async function showPlan() {
  $("plan-error").textContent = "";
  try {
    const plan = await api("POST", "/api/plan", request());
    const groups = Object.entries(plan.groups).map(([g, n]) => `${escapeHtml(g)} (${n})`).join(", ");
    const time = plan.seconds === null ? "no estimate for this method" : `about ${words(plan.seconds)}`;
    $("plan").innerHTML =
      `<p><strong>${plan.photos} photos</strong> in ${Object.keys(plan.groups).length} groups: ${groups}.</p>` +
      `<p>Largest photo ${plan.largest_megapixels < 0.1 ? "under 0.1" : plan.largest_megapixels.toFixed(1)} megapixels; the pattern is learned at ${plan.working_size} px and drawn onto every photo at its own size.</p>` +
      `<p>Time: <strong>${time}</strong>. Memory: about ${(plan.memory_bytes / 1e9).toFixed(1)} GB. ` +
      `The protected copies take about <strong>${size(plan.output_bytes)}</strong> (your originals: ${size(plan.original_bytes)}).</p>` +
      (plan.ignored.length ? `<p>${plan.ignored.length} other files are left alone.</p>` : "") +
      (plan.gps_photos && !$("strip").checked ? `<p class="warning">${plan.gps_photos} of your photos hold the place where they were taken (GPS), which would be published with them: tick <strong>Leave out the photos' hidden details</strong> above to leave it out.</p>` : "") +
      plan.notes.filter((n) => !n.includes("GPS")).map((n) => `<p class="warning">${escapeHtml(n)}</p>`).join("") +
      grouping(plan.grouping) +
      `<p class="hint">${escapeHtml(plan.text)}</p>`;
    $("plan").hidden = false;
    $("start-btn").disabled = state.started === JSON.stringify(request());  // one job per click
  } catch (e) { planError(e.message); }
}
async function start() {
  $("plan-error").textContent = "";
  $("start-btn").disabled = true;
  try {
    const req = request();
    const job = await api("POST", "/api/jobs", req);
    state.started = JSON.stringify(req);
    state.job = job.id; state.check = null; state.photos = []; setHash();
    showJob(job);
    poll();
  } catch (e) { planError(e.message); }
}

// ------------------------------------------------------------------ the job
function fraction(job) {  // the whole run's, from the server; never less than already shown for this job
  if (job.fraction === null || job.fraction === undefined) return state.most[job.id] ?? null;
  state.most[job.id] = Math.max(state.most[job.id] || 0, job.fraction);
  return state.most[job.id];
}
function showJob(job) {
  $("step-job").hidden = false;
  $("job-title").textContent = job.title;
  $("job-words").textContent = job.words;
  $("job-words").dataset.state = job.state;
  const f = fraction(job);
  if (f === null) { $("progress-bar").removeAttribute("value"); } else { $("progress-bar").value = f; }
  $("cancel-btn").hidden = !["queued", "running"].includes(job.state) || !!job.stopping;
  $("resume-btn").hidden = !["cancelled", "failed"].includes(job.state);
  if (job.state === "done" && !state.photos.length) showResults(job);
  $("step-results").hidden = job.state !== "done";
  $("step-check").hidden = job.state !== "done";
}
async function writeAgain() {
  $("again-words").textContent = "";
  try {
    const job = await api("POST", `/api/jobs/${state.job}/apply`, { format: $("again-format").value });
    state.job = job.id; state.check = null; state.photos = []; setHash();
    showJob(job);
    poll();
  } catch (e) { $("again-words").textContent = e.message; }
}
async function showResults(job) {
  const other = Object.keys(state.info.formats).find((f) => f !== (job.choices || {}).format);
  if (other) $("again-format").value = other;
  state.photos = await api("GET", `/api/jobs/${job.id}/photos`);
  state.shown = 0;
  $("gallery").innerHTML = "";
  $("download-link").href = withKey(`/api/jobs/${job.id}/protected.zip`);
  $("download-words").textContent = `${state.photos.length} photos at their own size, with their names, and manifest.json (what was done).`;
  showMore();
}
function showMore() {
  const job = state.job;
  const next = state.photos.slice(state.shown, state.shown + 12);
  for (const p of next) {
    const fig = document.createElement("figure");
    fig.className = "photo";
    const src = (kind) => withKey(`/api/jobs/${job}/preview/${p.index}/${kind}.png`);
    const view = (kind, alt, words) =>  // a tap or click opens the view on its own, at its full size
      `<div><a href="${src(kind)}" target="_blank" rel="noopener"><img src="${src(kind)}" alt="${alt}"></a><span>${words}</span></div>`;
    fig.innerHTML =
      `<div class="views">${view("before", `${escapeHtml(p.source)} before`, "before")}` +
      `${view("after", `${escapeHtml(p.name)} after`, "after")}` +
      `${view("diff", `the change made to ${escapeHtml(p.name)}, magnified`, "change, magnified")}</div>` +
      `<div class="views zoom">${view("before-100", `${escapeHtml(p.source)} before, a crop at 100%`, "before, at 100% (its smoothest area)")}` +
      `${view("after-100", `${escapeHtml(p.name)} after, a crop at 100%`, "after, at 100%")}` +
      `${view("diff-100", `the change made to ${escapeHtml(p.name)} at 100%, magnified`, "change at 100%, magnified")}</div>` +
      `<figcaption>${escapeHtml(p.name)}: ${p.width} x ${p.height}, group ${escapeHtml(p.group)}, largest change ${p.saved_change}/255 in the saved file${p.saved_change > p.max_change ? ` (${p.max_change}/255 before its JPEG encoding, which adds its own change)` : ""}</figcaption>`;
    $("gallery").appendChild(fig);
  }
  state.shown += next.length;
  $("more-btn").hidden = state.shown >= state.photos.length;
}

// ------------------------------------------------------------------ the check
async function startCheck() {
  const req = {};
  if ($("check-init").value) req.init = [$("check-init").value];
  if ($("check-epochs").value) req.epochs = parseInt($("check-epochs").value, 10);
  if ($("check-rrc").checked) req.rrc = true;
  try {
    const job = await api("POST", `/api/jobs/${state.job}/check`, req);
    state.check = job.id; setHash();
    showCheck(job);
    poll();
  } catch (e) { $("check-words").textContent = e.message; }
}
async function showCheck(job) {
  $("check-bar").hidden = false;
  $("check-words").textContent = job.words;
  $("check-words").dataset.state = job.state;
  const f = fraction(job);
  if (f === null) { $("check-bar").removeAttribute("value"); } else { $("check-bar").value = f; }
  $("check-btn").disabled = ["queued", "running"].includes(job.state);
  $("check-cancel-btn").hidden = !["queued", "running"].includes(job.state) || !!job.stopping;
  $("check-resume-btn").hidden = !["cancelled", "failed"].includes(job.state);
  if (job.state === "done" && $("report").hidden) {
    const r = await api("GET", `/api/jobs/${job.id}/report`);
    $("report").innerHTML = markdown(r.markdown) + `<img id="report-plot" src="${withKey(`/api/jobs/${job.id}/accuracy.png`)}" alt="accuracy of the test models">`;
    $("report").hidden = false;
  }
}

// ------------------------------------------------------------------ polling and history
async function poll() {
  clearTimeout(state.polling);
  let again = false;
  try {
    if (state.job) {
      const job = await api("GET", `/api/jobs/${state.job}`);
      showJob(job);
      again = again || ["queued", "running"].includes(job.state);
    }
    if (state.check) {
      const job = await api("GET", `/api/jobs/${state.check}`);
      await showCheck(job);
      again = again || ["queued", "running"].includes(job.state);
    }
    await showHistory();
  } catch (e) { again = true; }
  if (again) state.polling = setTimeout(poll, 1000);
}
async function showHistory() {
  const jobs = await api("GET", "/api/jobs");
  const ul = $("jobs");
  ul.innerHTML = "";
  for (const j of jobs) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "#";
    a.textContent = `${new Date(j.created * 1000).toLocaleString()}: ${j.title}`;
    a.addEventListener("click", (ev) => { ev.preventDefault(); openJob(j); });
    li.appendChild(a);
    li.appendChild(document.createTextNode(` (${j.state}) ${j.words}`));
    if (!["queued", "running"].includes(j.state)) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "Delete";
      b.setAttribute("aria-label", `Delete the job ${j.title}`);
      b.addEventListener("click", () => deleteJob(j));
      li.appendChild(b);
    }
    ul.appendChild(li);
  }
}
async function deleteJob(j) {
  if (!confirm(`Delete "${j.title}" and its protected copies from this app? Your own photos are not touched.`)) return;
  try { await api("DELETE", `/api/jobs/${j.id}`); } catch (e) { alert(e.message); return; }
  if (state.job === j.id || state.check === j.id) {
    if (state.job === j.id) { state.job = null; state.photos = []; $("step-job").hidden = true; $("step-results").hidden = true; $("step-check").hidden = true; }
    state.check = null; $("report").hidden = true; $("check-bar").hidden = true; $("check-words").textContent = "";
    setHash();
  }
  await showUpload();
  await showHistory();
}
function openJob(j) {
  if (j.kind === "check") { state.job = j.of; state.check = j.id; } else { state.job = j.id; state.check = null; }
  state.photos = []; $("report").hidden = true; $("check-bar").hidden = true; $("check-words").textContent = "";
  setHash(); poll();
}

// ------------------------------------------------------------------ small helpers
function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function size(bytes) { return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(0.1, bytes / 1e6).toFixed(1)} MB`; }
function words(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}
function markdown(md) {  // headings, tables, lists and paragraphs: what report.md uses
  const out = [];
  const lines = md.split("\n");
  const inline = (t) => escapeHtml(t).replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>").replace(/`(.+?)`/g, "<code>$1</code>");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^#+ /.test(line)) { const n = Math.min(6, line.match(/^#+/)[0].length + 2); out.push(`<h${n}>${inline(line.replace(/^#+ /, ""))}</h${n}>`); }
    else if (line.startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].startsWith("|")) { rows.push(lines[i]); i++; }
      i--;
      const cells = (r) => r.slice(1, -1).split("|").map((c) => c.trim());
      let html = "<table><thead><tr>" + cells(rows[0]).map((c) => `<th>${inline(c)}</th>`).join("") + "</tr></thead><tbody>";
      for (const r of rows.slice(2)) html += "<tr>" + cells(r).map((c) => `<td>${inline(c)}</td>`).join("") + "</tr>";
      out.push(html + "</tbody></table>");
    } else if (/^[-*] /.test(line)) {  // a list, in its own box
      const items = [];
      while (i < lines.length && /^[-*] /.test(lines[i])) { items.push(`<li>${inline(lines[i].slice(2))}</li>`); i++; }
      i--;
      out.push(`<ul>${items.join("")}</ul>`);
    }
    else if (/^\*\*.+\*\*$/.test(line)) { out.push(`<p class="answer">${inline(line)}</p>`); }  // the check's answer
    else if (line.trim()) { out.push(`<p>${inline(line)}</p>`); }
  }
  return out.join("\n");
}

// ------------------------------------------------------------------ start
document.addEventListener("DOMContentLoaded", async () => {
  readHash();
  state.info = await api("GET", "/api/info");
  fillChoices();
  $("files").addEventListener("change", (e) => addFiles(e.target.files, false));
  $("folder-input").addEventListener("change", (e) => addFiles(e.target.files, true));
  $("csv-file").addEventListener("change", async (e) => {
    const f = e.target.files[0];
    if (!f) return;
    const id = await ensureUpload();
    try { await api("PUT", `/api/uploads/${id}/labels`, f, true); $("csv-status").textContent = `${f.name} added.`; }
    catch (err) { $("csv-status").textContent = err.message; }
    invalidatePlan();
  });
  $("plan-btn").addEventListener("click", showPlan);
  $("start-btn").addEventListener("click", start);
  $("cancel-btn").addEventListener("click", async () => { showJob(await api("POST", `/api/jobs/${state.job}/cancel`)); poll(); });
  $("resume-btn").addEventListener("click", async () => { showJob(await api("POST", `/api/jobs/${state.job}/resume`)); poll(); });
  $("more-btn").addEventListener("click", showMore);
  $("check-btn").addEventListener("click", startCheck);
  $("check-cancel-btn").addEventListener("click", async () => { await showCheck(await api("POST", `/api/jobs/${state.check}/cancel`)); poll(); });
  $("check-resume-btn").addEventListener("click", async () => { await showCheck(await api("POST", `/api/jobs/${state.check}/resume`)); poll(); });
  $("start-over-btn").addEventListener("click", startOver);
  $("again-btn").addEventListener("click", writeAgain);
  await showUpload();
  poll();
});
