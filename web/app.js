// medfit dashboard: plain ES module, no build step. Talks to /v1 with the key the user typed;
// the key lives in sessionStorage only, and every value shown is text-escaped.
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const fmt = (v) => (typeof v === 'number' ? (Math.abs(v) >= 1e4 ? v.toExponential(2) : v.toFixed(4)) : v ?? '-');

async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${sessionStorage.getItem('medfit-key') ?? ''}` } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail ?? body.error ?? res.statusText);
  return body;
}

function list(el, items, render, onClick) {
  el.innerHTML = items.length ? '' : '<li class="muted">none</li>';
  for (const item of items) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.innerHTML = render(item);
    if (onClick) b.onclick = () => onClick(item);
    li.append(b);
    el.append(li);
  }
}

/** An SVG line plot of (x, y) points in [0, 1]², with a diagonal reference when asked. */
function plot(title, xs, ys, xLabel, yLabel, diagonal) {
  const w = 260, h = 220, m = 32;
  const px = (x) => m + x * (w - 2 * m);
  const py = (y) => h - m - y * (h - 2 * m);
  const path = xs.map((x, i) => `${i ? 'L' : 'M'}${px(x).toFixed(1)},${py(ys[i]).toFixed(1)}`).join('');
  return `<figure><svg width="${w}" height="${h}" role="img" aria-label="${esc(title)}">
    <rect x="${m}" y="${m}" width="${w - 2 * m}" height="${h - 2 * m}" fill="none" stroke="#d8dee4"/>
    ${diagonal ? `<line x1="${px(0)}" y1="${py(0)}" x2="${px(1)}" y2="${py(1)}" stroke="#c0c8d0" stroke-dasharray="4"/>` : ''}
    <path d="${path}" fill="none" stroke="#1f6feb" stroke-width="2"/>
    <text x="${px(0)}" y="${py(0) + 12}" text-anchor="middle" font-size="10" fill="#6b7785">0</text>
    <text x="${px(1)}" y="${py(0) + 12}" text-anchor="middle" font-size="10" fill="#6b7785">1</text>
    <text x="${px(0) - 6}" y="${py(1) + 4}" text-anchor="end" font-size="10" fill="#6b7785">1</text>
    <text x="${w / 2}" y="${h - 6}" text-anchor="middle" font-size="11">${esc(xLabel)}</text>
    <text x="10" y="${h / 2}" transform="rotate(-90 10 ${h / 2})" text-anchor="middle" font-size="11">${esc(yLabel)}</text>
    <text x="${w / 2}" y="18" text-anchor="middle" font-size="12" font-weight="600">${esc(title)}</text>
  </svg></figure>`;
}

async function showVersion(name, version) {
  const v = await api(`/v1/models/${encodeURIComponent(name)}/versions/${version}`);
  const cv = v.metrics?.cv ?? {};
  const rows = Object.entries(cv).map(([k, s]) => `<tr><td>${esc(k)}</td><td>${fmt(s.mean)}</td><td class="muted">± ${fmt(s.std)}</td></tr>`).join('');
  const ev = v.evaluation;
  let plots = '';
  if (ev?.roc) plots += plot(`ROC (AUROC ${fmt(ev.metrics.auroc)})`, ev.roc.fpr, ev.roc.tpr, 'false positive rate', 'true positive rate', true);
  if (ev?.pr) plots += plot(`Precision-recall (AP ${fmt(ev.metrics.auprc)})`, ev.pr.recall, ev.pr.precision, 'recall', 'precision', false);
  $('detail').innerHTML = `<h2>${esc(name)} v${esc(v.version)} <span class="muted">${esc(v.family)} · ${esc(v.task)} · ${esc(v.stage)}</span></h2>
    <div class="plots">${plots}</div>
    <h2>Cross-validated metrics</h2><table>${rows || '<tr><td class="muted">none</td></tr>'}</table>
    <h2>Hyperparameters</h2><pre>${esc(JSON.stringify(v.hyperparameters ?? {}, null, 1))}</pre>
    <h2>Lineage</h2><pre>${esc(JSON.stringify(v.lineage, null, 1))}</pre>`;
}

async function refresh() {
  $('status').textContent = 'loading…';
  try {
    const [{ models }, { jobs }, { datasets }] = await Promise.all([api('/v1/models'), api('/v1/jobs'), api('/v1/datasets')]);
    list($('models'), models, (m) => `${esc(m.name)} <span class="muted">v${m.latest}${m.production ? ` · prod v${m.production}` : ''}</span>`, (m) => showVersion(m.name, m.production ?? m.latest));
    list($('jobs'), jobs.slice(-10).reverse(), (j) => `${esc(j.name)} <span class="muted">${esc(j.status)} ${Math.round(j.progress * 100)}%</span>`);
    list($('datasets'), datasets, (d) => `${esc(d.name)} <span class="muted">${d.rows} rows</span>`);
    $('status').textContent = '';
  } catch (e) {
    $('status').innerHTML = `<span class="error">${esc(e.message)}</span>`;
  }
}

$('key').value = sessionStorage.getItem('medfit-key') ?? '';
$('connect').onclick = () => {
  sessionStorage.setItem('medfit-key', $('key').value.trim());
  refresh();
};
if ($('key').value) refresh();
