"""The one page of `cnnlab serve`: drop or choose an image, see what the model says."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cnnlab · __NAME__</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f7f9; color: #1d232b; }
  header { background: #1d232b; color: #fff; padding: 14px 24px; }
  header b { font-size: 18px; } header span { opacity: .75; margin-left: 12px; font-size: 14px; }
  main { max-width: 980px; margin: 24px auto; padding: 0 16px; }
  #drop { display: block; border: 2px dashed #8a96a3; border-radius: 10px; padding: 28px; text-align: center; background: #fff;
          cursor: pointer; }
  #drop.over { border-color: #2f7de1; background: #eef5ff; }
  #status { margin: 14px 0; min-height: 1.3em; }
  #status.error { color: #b3261e; font-weight: 600; }
  .row { display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }
  .pics img { max-width: 300px; max-height: 300px; border-radius: 6px; margin-right: 10px; background: #fff; }
  .pics figure { display: inline-block; vertical-align: top; margin: 0 10px 10px 0; } figcaption { font-size: 13px; color: #555; }
  table { border-collapse: collapse; min-width: 320px; } td { padding: 5px 8px; font-size: 15px; }
  .bar { background: #2f7de1; height: 12px; border-radius: 3px; }
  pre { background: #fff; padding: 10px; border-radius: 6px; max-width: 420px; overflow: auto; font-size: 12px; }
</style>
</head>
<body>
<header><b>cnnlab</b><span>__NAME__ · __TASK__</span></header>
<main>
  <label id="drop" for="file">Drop an image here, or click to choose one
    <input id="file" name="file" type="file" accept="image/*" style="display:none">
  </label>
  <div id="status"></div>
  <div class="row">
    <div class="pics" id="pics"></div>
    <div id="result"></div>
  </div>
</main>
<script>
const drop = document.getElementById("drop"), input = document.getElementById("file");
const statusEl = document.getElementById("status"), pics = document.getElementById("pics"),
      result = document.getElementById("result");
function say(text, error) { statusEl.textContent = text; statusEl.className = error ? "error" : ""; }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c])); }
function figure(src, caption) { return `<figure><img src="${src}" alt="${esc(caption)}"><figcaption>${esc(caption)}</figcaption></figure>`; }
async function send(file) {
  if (!file) return;
  say(`asking the model about ${file.name} ...`);
  result.innerHTML = ""; pics.innerHTML = figure(URL.createObjectURL(file), file.name);
  const body = new FormData(); body.append("file", file, file.name);
  let reply, data;
  try { reply = await fetch("predict", {method: "POST", body}); data = await reply.json(); }
  catch (e) { say("the server did not answer: " + e, true); return; }
  if (!reply.ok) { say(data.detail || ("error " + reply.status), true); return; }
  say("");
  if (data.overlay) pics.innerHTML += figure(data.overlay, "Grad-CAM of the top class");
  if (data.drawing) pics.innerHTML += figure(data.drawing, "prediction");
  if (data.top) {
    result.innerHTML = "<table id='top'>" + data.top.map(t =>
      `<tr><td class="cls">${esc(t.class)}</td><td>${(100 * t.prob).toFixed(1)}%</td>` +
      `<td style="width:160px"><div class="bar" style="width:${Math.max(1, 160 * t.prob)}px"></div></td></tr>`).join("") + "</table>";
  } else {
    const shown = Object.assign({}, data); delete shown.drawing;
    result.innerHTML = "<pre id='json'>" + esc(JSON.stringify(shown, null, 1)) + "</pre>";
  }
}
input.addEventListener("change", () => send(input.files[0]));
["dragenter", "dragover"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach(t => drop.addEventListener(t, e => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", e => send(e.dataTransfer.files[0]));
</script>
</body>
</html>
"""


def render(name: str, task: str) -> str:
    from html import escape

    return PAGE.replace("__NAME__", escape(name)).replace("__TASK__", escape(task))
