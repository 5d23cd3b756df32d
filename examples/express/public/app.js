// The portal page: uploads with one progress bar per file (XMLHttpRequest upload progress),
// a live list of stored files, and the demo webhook's deliveries. No framework, no build.
const $ = (id) => document.getElementById(id);
const input = $('file-input');
const dropzone = $('dropzone');
const progressList = $('progress-list');
let maxSizeBytes = 50 * 1024 * 1024;
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

  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/uploads');
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (event) => {
      if (!event.lengthComputable) return;
      bar.value = Math.round((event.loaded / event.total) * 100);
      state.textContent = `${bar.value}%`;
    });
    xhr.addEventListener('load', () => {
      const result = xhr.response?.files?.[0];
      if (xhr.status === 201 && result?.status === 'stored') {
        finish(true, `Stored · ${formatSize(result.size_bytes)} · sha256 ${result.sha256.slice(0, 12)}…`);
      } else {
        const error = result?.error ?? xhr.response ?? {};
        finish(false, `Failed (${error.code ?? `HTTP ${xhr.status}`}): ${error.message ?? 'the server refused the file'}`);
      }
      resolve();
      void refreshFiles();
    });
    xhr.addEventListener('error', () => {
      finish(false, 'Failed: the connection broke');
      resolve();
    });
    const form = new FormData();
    form.append('file', file, file.name);
    state.textContent = '0%';
    xhr.send(form);
  });
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

// ---- webhook deliveries ---------------------------------------------------

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
  else if (d.duplicate) [verdict, verdictClass] = ['signature valid · duplicate delivery, ignored', 'verified'];
  else if (d.sha256_match === null) [verdict, verdictClass] = ['signature valid · checking the file…', 'pending'];
  else if (d.sha256_match) [verdict, verdictClass] = ['verified: signature valid, sha256 matches', 'verified'];
  else [verdict, verdictClass] = [`signature valid · ${d.error ?? 'sha256 mismatch'}`, 'failed'];
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
  const types = config.allowed_types === null ? 'any type' : config.allowed_types.join(', ');
  $('limit-hint').textContent = `Up to ${formatSize(maxSizeBytes)} per file; ${types}.`;
} catch (error) {
  console.error(error);
}
await Promise.all([refreshFiles(), refreshHooks()]);
setInterval(() => void refreshHooks(), 1500);
setInterval(() => void refreshFiles(), 5000);
