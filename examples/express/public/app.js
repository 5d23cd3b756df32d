// The portal page: uploads with one progress bar per file (XMLHttpRequest upload progress;
// on S3, the browser's own PUTs to the bucket, in parts for big files),
// a live list of stored files, the outbox's deliveries (with Redeliver) and what the demo
// webhook received. No framework, no build.
const $ = (id) => document.getElementById(id);
const input = $('file-input');
const dropzone = $('dropzone');
const progressList = $('progress-list');
let maxSizeBytes = 50 * 1024 * 1024;
// Set from /config: on S3 the page sends each file to the bucket itself (direct upload).
let directUploads = false;
let nextCursor = null;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

// ---- uploads --------------------------------------------------------------

function uploadOne(file) {
  const bar = el('progress', { max: 100, value: 0, 'aria-label': `Upload progress of ${file.name}` });
  const state = el('span', { className: 'state', textContent: 'Waiting…' });
  const item = el('li', { className: 'progress-item', dataset: { name: file.name } }, el('span', { className: 'name', textContent: file.name }), state, bar);
  progressList.prepend(item);

  const finish = (ok, text) => {
    bar.value = 100;
    item.dataset.state = ok ? 'done' : 'failed';
    state.className = `state ${ok ? 'ok' : 'bad'}`;
    state.textContent = text;
  };

  if (file.size > maxSizeBytes) {
    // The server would refuse it too (413); no need to send 50 MiB to learn that.
    finish(false, `Too large: ${formatSize(file.size)} is over the ${formatSize(maxSizeBytes)} limit`);
    return Promise.resolve();
  }

  const done = (result) => finish(true, `Stored · ${formatSize(result.size_bytes)} · sha256 ${result.sha256.slice(0, 12)}…`);
  const failed = (error, status) => finish(false, `Failed (${error?.code ?? `HTTP ${status}`}): ${error?.message ?? 'the server refused the file'}`);
  item.dataset.route = directUploads ? 'direct' : 'app';
  const progress = (loaded) => {
    // What the browser's own upload reports as sent (the bar follows it).
    item.dataset.sent = String(loaded);
    bar.value = file.size === 0 ? 100 : Math.min(100, Math.round((loaded / file.size) * 100));
    state.textContent = `${bar.value}%`;
  };
  state.textContent = '0%';
  const upload = directUploads ? uploadDirect(file, progress).catch((error) => fallBack(error, file, item, progress)) : uploadThroughApp(file, progress);
  return upload.then(
    (result) => {
      if (result.ok) done(result.file);
      else failed(result.error, result.status);
      void refreshFiles();
    },
    (error) => {
      finish(false, `Failed: ${error instanceof Error ? error.message : 'the connection broke'}`);
      void refreshFiles();
    },
  );
}

/** One request with `body`; resolves with the XHR once it has loaded. */
function send(method, url, body, { headers = {}, onProgress, json = false } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    if (json) xhr.responseType = 'json';
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    if (onProgress) xhr.upload.addEventListener('progress', (event) => onProgress(event.loaded));
    xhr.addEventListener('load', () => resolve(xhr));
    // No answer the page may read: the network, or a CORS refusal (the storage has no rule for this origin).
    xhr.addEventListener('error', () => reject(Object.assign(new Error('the connection broke'), { network: true })));
    xhr.send(body);
  });
}

const postJson = async (url, body) => {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body ?? {}) });
  return { status: response.status, ok: response.ok, body: await response.json().catch(() => ({})) };
};

/**
 * The browser could not reach the storage at all (most often its CORS rules do not name this
 * origin, as on OpenStack Swift, whose S3 API has no bucket CORS): the direct upload was
 * aborted, so send this file, and the ones after it, through the app instead.
 */
function fallBack(error, file, item, progress) {
  if (error?.network !== true) throw error;
  directUploads = false;
  item.dataset.route = 'app';
  item.dataset.fallback = 'direct upload unreachable';
  console.warn('Direct upload to the storage failed (CORS or network); uploading through the app from now on.');
  return uploadThroughApp(file, progress);
}

/** Through the app: one multipart/form-data POST, streamed by the server into the storage. */
async function uploadThroughApp(file, onProgress) {
  const form = new FormData();
  form.append('file', file, file.name);
  const xhr = await send('POST', '/uploads', form, { onProgress, json: true });
  const result = xhr.response?.files?.[0];
  if (xhr.status === 201 && result?.status === 'stored') return { ok: true, file: result };
  return { ok: false, status: xhr.status, error: result?.error ?? xhr.response };
}

/**
 * Direct to the storage: ask the app for a presigned target, send the bytes there (one PUT,
 * or parts of `part_size`, three at a time), then ask the app to complete: it checks the object
 * and records it with its file.stored event.
 */
async function uploadDirect(file, onProgress) {
  const started = await postJson('/uploads/direct', { filename: file.name, size: file.size, content_type: file.type || undefined });
  if (started.status !== 201) return { ok: false, status: started.status, error: started.body };
  const { file: record, upload } = started.body;
  try {
    if (upload.method === 'PUT') {
      const xhr = await send('PUT', upload.url, file, { headers: upload.headers, onProgress });
      if (xhr.status !== 200) throw new Error(`the storage answered HTTP ${xhr.status}`);
    } else {
      await sendParts(record.id, file, upload, onProgress);
    }
  } catch (error) {
    await fetch(`/uploads/${record.id}/direct`, { method: 'DELETE' }).catch(() => undefined);
    throw error;
  }
  const completed = await postJson(`/uploads/${record.id}/complete`);
  if (!completed.ok) return { ok: false, status: completed.status, error: completed.body };
  onProgress(file.size);
  return { ok: true, file: completed.body };
}

async function sendParts(id, file, upload, onProgress) {
  const loaded = new Map();
  const report = () => onProgress([...loaded.values()].reduce((a, b) => a + b, 0));
  const numbers = Array.from({ length: upload.part_count }, (_, i) => i + 1);
  for (let batch = 0; batch < numbers.length; batch += 10) {
    const signed = await postJson(`/uploads/${id}/parts`, { part_numbers: numbers.slice(batch, batch + 10) });
    if (!signed.ok) throw new Error(signed.body?.message ?? `HTTP ${signed.status}`);
    const queue = [...signed.body.parts];
    const worker = async () => {
      for (let part = queue.shift(); part !== undefined; part = queue.shift()) {
        const start = (part.part_number - 1) * upload.part_size;
        const xhr = await send('PUT', part.url, file.slice(start, start + part.size), {
          headers: part.headers,
          onProgress: (bytes) => {
            loaded.set(part.part_number, bytes);
            report();
          },
        });
        if (xhr.status !== 200) throw new Error(`part ${part.part_number}: the storage answered HTTP ${xhr.status}`);
        loaded.set(part.part_number, part.size);
        report();
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  }
}

function uploadAll(files) {
  // Each file is its own request, so each has its own progress and its own result.
  return Promise.all([...files].map(uploadOne));
}

input.addEventListener('change', () => {
  const files = [...input.files];
  input.value = '';
  void uploadAll(files);
});

for (const type of ['dragenter', 'dragover']) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) {
  dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'));
}
dropzone.addEventListener('drop', (event) => {
  event.preventDefault();
  if (event.dataTransfer?.files?.length) void uploadAll(event.dataTransfer.files);
});

// ---- stored files ---------------------------------------------------------

function fileRow(file) {
  const download = el('a', { className: 'button secondary', href: file.download_url, textContent: 'Download', 'aria-label': `Download ${file.original_filename}` });
  const remove = el('button', { type: 'button', className: 'danger', textContent: 'Delete', 'aria-label': `Delete ${file.original_filename}` });
  remove.addEventListener('click', async () => {
    remove.disabled = true;
    const response = await fetch(`/uploads/${file.id}`, { method: 'DELETE' });
    if (response.ok) row.remove();
    else remove.disabled = false;
    updateEmpty();
  });
  const row = el(
    'tr',
    { dataset: { id: file.id } },
    el('td', { className: 'name', dataset: { label: 'Name' }, textContent: file.original_filename }),
    el('td', { dataset: { label: 'Size' }, textContent: formatSize(file.size_bytes) }),
    el('td', { dataset: { label: 'Type' }, textContent: file.content_type }),
    el('td', { className: 'mono', dataset: { label: 'SHA-256' }, title: file.sha256, textContent: `${file.sha256.slice(0, 12)}…` }),
    el('td', { dataset: { label: 'Status' }, textContent: file.status }),
    el('td', {}, el('div', { className: 'actions' }, download, remove)),
  );
  return row;
}

function updateEmpty() {
  const count = $('files-body').children.length;
  $('files-table').hidden = count === 0;
  $('files-empty').hidden = count !== 0;
}

async function refreshFiles() {
  try {
    const page = await getJson('/uploads?limit=20');
    $('files-body').replaceChildren(...page.items.map(fileRow));
    nextCursor = page.next_cursor;
    $('more').hidden = nextCursor === null;
    updateEmpty();
  } catch (error) {
    console.error(error);
  }
}

$('more').addEventListener('click', async () => {
  if (nextCursor === null) return;
  const page = await getJson(`/uploads?limit=20&cursor=${encodeURIComponent(nextCursor)}`);
  $('files-body').append(...page.items.map(fileRow));
  nextCursor = page.next_cursor;
  $('more').hidden = nextCursor === null;
});
$('refresh').addEventListener('click', () => void refreshFiles());

// ---- outbox deliveries ----------------------------------------------------

const shortId = (id) => id.slice(-8);
const clock = (iso) => `${iso.slice(11, 19)} UTC`;

function lastResult(d) {
  const parts = [];
  if (d.last_status !== null) parts.push(`HTTP ${d.last_status}`);
  if (d.last_error !== null && d.last_error !== `HTTP ${d.last_status}`) parts.push(d.last_error);
  if (d.status === 'pending' && d.next_attempt_at !== null) parts.push(d.attempts === 0 ? 'due now' : `next attempt ${clock(d.next_attempt_at)}`);
  if (d.status === 'delivered' && d.delivered_at !== null) parts.push(`delivered ${clock(d.delivered_at)}`);
  return parts.join(' · ') || '—';
}

/** Rows by delivery id: updated in place, so a refresh never takes the focus off a button. */
const deliveryRows = new Map();

function deliveryRow(d) {
  let row = deliveryRows.get(d.id);
  if (row === undefined) {
    const redeliver = el('button', { type: 'button', className: 'secondary', textContent: 'Redeliver' });
    redeliver.addEventListener('click', () => void redeliverOne(row, redeliver));
    const cell = (label, className = '') => el('td', { className, dataset: { label } });
    row = el(
      'tr',
      { dataset: { deliveryId: d.id, eventId: d.event_id } },
      cell('Event'),
      cell('Endpoint', 'endpoint'),
      cell('Status'),
      cell('Attempts'),
      cell('Last result'),
      el('td', {}, el('div', { className: 'actions' }, redeliver)),
    );
    deliveryRows.set(d.id, row);
  }
  const [event, endpoint, status, attempts, result, actions] = row.children;
  event.replaceChildren(el('strong', { textContent: d.event_type }), ' ', el('span', { className: 'mono', title: d.event_id, textContent: `…${shortId(d.event_id)}` }));
  endpoint.textContent = d.endpoint_url ?? '(endpoint removed)';
  status.className = d.status;
  status.textContent = d.status;
  attempts.textContent = String(d.attempts);
  result.textContent = lastResult(d);
  row.dataset.status = d.status;
  row.dataset.attempts = String(d.attempts);
  const button = actions.querySelector('button');
  button.setAttribute('aria-label', `Redeliver ${d.event_type} …${shortId(d.event_id)} to ${d.endpoint_url ?? 'its endpoint'}`);
  return row;
}

async function refreshDeliveries() {
  try {
    const { items } = await getJson('/api/deliveries');
    const body = $('deliveries-body');
    const rows = items.map(deliveryRow);
    // Move only what is out of place (new rows come first): a moved row would lose the focus.
    rows.forEach((row, index) => {
      if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
    });
    while (body.children.length > rows.length) body.lastElementChild.remove();
    const shown = new Set(items.map((d) => d.id));
    for (const id of deliveryRows.keys()) if (!shown.has(id)) deliveryRows.delete(id);
    $('deliveries-table').hidden = rows.length === 0;
    $('deliveries-empty').hidden = rows.length !== 0;
  } catch (error) {
    console.error(error);
  }
}

async function redeliverOne(row, button) {
  // aria-disabled, not disabled: a disabled button would drop the keyboard focus.
  if (button.getAttribute('aria-disabled') === 'true') return;
  const label = button.getAttribute('aria-label').replace(/^Redeliver /u, '');
  button.setAttribute('aria-disabled', 'true');
  try {
    const response = await fetch(`/api/deliveries/${encodeURIComponent(row.dataset.deliveryId)}/redeliver`, { method: 'POST', headers: { accept: 'application/json' } });
    const json = await response.json().catch(() => ({}));
    $('deliveries-status').textContent = response.ok ? `Queued again: ${label}.` : `Could not redeliver ${label}: ${json.message ?? `HTTP ${response.status}`}`;
  } catch {
    $('deliveries-status').textContent = `Could not redeliver ${label}: the connection broke.`;
  } finally {
    button.removeAttribute('aria-disabled');
  }
  await Promise.all([refreshDeliveries(), refreshHooks()]);
}

$('deliveries-refresh').addEventListener('click', () => void Promise.all([refreshDeliveries(), refreshHooks()]));

// ---- what the demo receiver got -------------------------------------------

/** Why the demo receiver refused a delivery, by verifyWebhook's error code. */
const REFUSALS = {
  E_WEBHOOK_HEADER: 'Standard Webhooks headers missing',
  E_WEBHOOK_TIMESTAMP: 'timestamp outside the tolerance (a replay?)',
  E_WEBHOOK_SIGNATURE: 'signature invalid',
};

function hookItem(d) {
  let verdict;
  let verdictClass;
  if (!d.signature_valid) [verdict, verdictClass] = [`refused: ${REFUSALS[d.rejected] ?? 'signature invalid'}`, 'failed'];
  else if (d.sha256_match === null) [verdict, verdictClass] = ['signature valid · checking the file…', 'pending'];
  else if (d.sha256_match) [verdict, verdictClass] = ['verified: signature valid, sha256 matches', 'verified'];
  else [verdict, verdictClass] = [`signature valid · ${d.error ?? 'sha256 mismatch'}`, 'failed'];
  // A redelivery (same webhook-id): not processed again; it shows the first check's verdict.
  if (d.signature_valid && d.duplicate) verdict += ' · duplicate delivery (same webhook-id), not processed again';
  return el(
    'li',
    { className: 'hook', dataset: { delivery: d.delivery, verified: String(d.signature_valid && d.sha256_match === true) } },
    el('span', {}, el('strong', { textContent: d.event || '(no event)' }), ' ', d.original_filename ?? ''),
    el('span', { className: verdictClass, textContent: verdict }),
    el('span', { className: 'meta', textContent: `${d.received_at.slice(11, 19)} UTC · delivery ${d.delivery}` }),
  );
}

async function refreshHooks() {
  try {
    const { deliveries } = await getJson('/webhooks/demo');
    $('hooks-list').replaceChildren(...deliveries.map(hookItem));
    $('hooks-empty').hidden = deliveries.length !== 0;
  } catch (error) {
    console.error(error);
  }
}

// ---- start ----------------------------------------------------------------

try {
  const config = await getJson('/config');
  maxSizeBytes = config.max_size_bytes;
  directUploads = config.direct_uploads === true;
  const types = config.allowed_types === null ? 'any type' : config.allowed_types.join(', ');
  $('limit-hint').textContent = `Up to ${formatSize(maxSizeBytes)} per file; ${types}.`;
} catch (error) {
  console.error(error);
}
await Promise.all([refreshFiles(), refreshDeliveries(), refreshHooks()]);
setInterval(() => void Promise.all([refreshDeliveries(), refreshHooks()]), 1500);
setInterval(() => void refreshFiles(), 5000);
