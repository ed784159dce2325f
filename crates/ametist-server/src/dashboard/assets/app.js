// The Ametist dashboard: one page, six views, all of their data from this server's REST API.
//
// No framework and no build step: the server embeds this file as it is written here. Every
// value that comes from the database (names, ids, payloads) reaches the page through
// `textContent` (the `h` helper), never through HTML parsing, because payloads are
// arbitrary JSON written by whoever can upsert points.
'use strict';

// The key lives in sessionStorage: it survives a reload but not the closing of the tab, and
// it is never written to a cookie, so other sites cannot make the browser send it.
const KEY_STORAGE = 'ametist-api-key';

const state = {
  key: sessionStorage.getItem(KEY_STORAGE),
  // The collection the views last worked on, so that switching views keeps it.
  collection: null,
  // Bumped at every view change: a refresh loop started for an older view stops itself.
  generation: 0,
  // Whether the server registered the fault-injection route (learnt on the first try).
  faultInjection: null,
};

// ---------------------------------------------------------------------------------------
// Talking to the server.

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One REST call. Answers `{result, time, elapsed, partial}` where `time` is the server's own
// figure from Qdrant's envelope (seconds) and `elapsed` the round trip seen here (ms);
// failures throw an ApiError carrying the envelope's message. `raw` is for `GET /`, the one
// route whose answer is the bare object rather than an envelope.
async function api(method, path, body, { raw = false } = {}) {
  // JSON asked for explicitly: `GET /` sends a browser that asks for HTML to this page.
  const headers = { accept: 'application/json' };
  if (state.key) headers['api-key'] = state.key;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const started = performance.now();
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `The server did not answer (${e.message}).`);
  }
  const text = await resp.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { /* reported below */ }
  if (!resp.ok) {
    const message = (json && json.status && json.status.error) || text || resp.statusText;
    if (resp.status === 401 || resp.status === 403) showLogin(resp.status, message);
    throw new ApiError(resp.status, message);
  }
  if (json === null) throw new ApiError(resp.status, 'The server answered something that is not JSON.');
  if (raw) return { result: json };
  return { result: json.result, time: json.time, elapsed: performance.now() - started, partial: json.partial };
}

const enc = encodeURIComponent;
const collectionPath = (name) => `/collections/${enc(name)}`;

// ---------------------------------------------------------------------------------------
// Building the page.

// `h('td', {class: 'num'}, 12)` makes an element; strings become text nodes, never HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Styles through the CSSOM: the content security policy refuses `style` attributes.
    else if (k === 'style') Object.assign(el.style, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const $ = (sel, root = document) => root.querySelector(sel);
const view = () => $('#view');

function fmtNumber(n) {
  return n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US');
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  return ms < 10 ? `${ms.toFixed(2)} ms` : ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function compact(value, max = 160) {
  const s = JSON.stringify(value);
  if (s === undefined) return '';
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

// A vector shortened for a table cell: the first components and the length.
function vectorPreview(v) {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    const head = v.slice(0, 4).map((x) => (typeof x === 'number' ? x.toFixed(3) : x)).join(', ');
    return `[${head}${v.length > 4 ? ', …' : ''}] (${v.length})`;
  }
  if (typeof v === 'object') {
    return Object.entries(v)
      .map(([name, x]) => (x && x.indices ? `${name}: sparse (${x.indices.length})` : `${name}: ${vectorPreview(x)}`))
      .join('; ');
  }
  return String(v);
}

// Reads a point id typed by a user: digits are an unsigned integer id, anything else a string
// (UUID) id, as Qdrant's clients send them.
function parsePointId(text) {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : t;
}

// Parses a JSON field of a form. Empty means "not given". A mistake is shown under the field
// itself and stops the action, so that the user sees where it is.
function readJson(textarea, errorEl, what, check) {
  errorEl.textContent = '';
  const text = textarea.value.trim();
  if (!text) return { ok: true, value: undefined };
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    errorEl.textContent = `${what} is not valid JSON: ${e.message}`;
    return { ok: false };
  }
  const problem = check ? check(value) : null;
  if (problem) {
    errorEl.textContent = `${what}: ${problem}`;
    return { ok: false };
  }
  return { ok: true, value };
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const checkFilter = (v) => (isObject(v) ? null : 'a filter is a JSON object, e.g. {"must": [...]}');

// A refresh loop for the view drawn in `root`: runs `fn` now and every `ms`, never twice at
// once, and stops when the user leaves that view (`route` gives each view's root the
// generation it was drawn for; a view still loading when the user moved on never loops).
function every(root, ms, fn) {
  const live = () => root.generation === state.generation;
  const tick = async () => {
    if (!live()) return;
    try { await fn(); } catch (_) { /* each view shows its own errors */ }
    if (live()) setTimeout(tick, ms);
  };
  tick();
}

async function listCollections() {
  const { result } = await api('GET', '/collections');
  return result.collections.map((c) => c.name).sort();
}

// A select of the collections; keeps `state.collection` in step and calls `onChange`.
async function collectionPicker(id, onChange) {
  const names = await listCollections();
  if (!names.includes(state.collection)) state.collection = names[0] || null;
  const select = h('select', { id, onchange: () => { state.collection = select.value; onChange(); } },
    names.map((n) => h('option', { value: n }, n)));
  select.value = state.collection || '';
  return { select, empty: names.length === 0 };
}

function noCollections() {
  return h('p', { class: 'note' }, 'No collection yet: create one on the ',
    h('a', { href: '#/collections' }, 'Collections'), ' page.');
}

// Describes a collection's vectors from Qdrant's `config.params`.
function describeVectors(params) {
  const parts = [];
  const v = params.vectors;
  if (v && typeof v.size === 'number') parts.push(`${v.size} · ${v.distance}`);
  else if (isObject(v)) {
    for (const [name, p] of Object.entries(v)) parts.push(`${name || '(unnamed)'}: ${p.size} · ${p.distance}`);
  }
  for (const name of Object.keys(params.sparse_vectors || {})) parts.push(`${name}: sparse`);
  return parts.join('; ') || '–';
}

// The vectors a query may name in `using`: '' for the unnamed one (when the collection has
// it), then the named dense and sparse vectors.
function vectorNames(info) {
  const v = info.config.params.vectors;
  if (isObject(v) && typeof v.size === 'number') return [''];
  const names = isObject(v) ? Object.keys(v).sort() : [];
  names.push(...Object.keys(info.config.params.sparse_vectors || {}).sort());
  return names;
}

// ---------------------------------------------------------------------------------------
// 1. Collections: list, create, delete (with confirmation), aliases.

async function renderCollections(root) {
  const error = h('p', { class: 'error', id: 'collections-error', role: 'alert' });
  const body = h('tbody');
  const table = h('table', { id: 'collections-table' },
    h('thead', {}, h('tr', {},
      ['Name', 'Status', 'Points', 'Partitions', 'Vectors', 'Quantization', 'Payload indexes', ''].map((t) =>
        h('th', { class: ['Points', 'Partitions'].includes(t) ? 'num' : null }, t)))),
    body);
  // The name whose deletion waits for a second click; kept across refreshes of the table.
  let confirming = null;

  const refresh = async () => {
    let names;
    try {
      names = await listCollections();
      error.textContent = '';
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    const rows = await Promise.all(names.map(async (name) => {
      try {
        const [info, parts] = await Promise.all([
          api('GET', collectionPath(name)),
          api('GET', `${collectionPath(name)}/partitions`),
        ]);
        return { name, info: info.result, partitions: parts.result.partitions };
      } catch (e) {
        return { name, error: e.message };
      }
    }));
    body.replaceChildren(...rows.map(collectionRow));
    if (!rows.length) body.append(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No collections.')));
  };

  const collectionRow = (row) => {
    const { name } = row;
    const open = (where) => () => { state.collection = name; location.hash = `#/${where}`; };
    const actions = h('td', {},
      h('button', { class: 'secondary', type: 'button', onclick: open('points') }, 'Points'), ' ',
      h('button', { class: 'secondary', type: 'button', onclick: open('search') }, 'Search'), ' ',
      h('button', { class: 'secondary', type: 'button', onclick: open('actors') }, 'Actors'), ' ');
    if (confirming === name) {
      actions.append(
        h('button', { class: 'danger confirm confirm-delete', type: 'button', onclick: () => remove(name) }, `Delete ${name}`), ' ',
        h('button', { class: 'secondary cancel-delete', type: 'button', onclick: () => { confirming = null; refresh(); } }, 'Keep'));
    } else {
      actions.append(h('button', { class: 'danger delete-collection', type: 'button',
        onclick: () => { confirming = name; refresh(); } }, 'Delete'));
    }
    if (row.error) {
      return h('tr', { 'data-collection': name }, h('td', {}, name), h('td', { colspan: 6, class: 'error' }, row.error), actions);
    }
    const { info, partitions } = row;
    const quant = new Set(partitions.map((p) => (p.index && p.index.quantization) || 'none'));
    const schema = Object.entries(info.payload_schema || {}).map(([k, s]) => `${k} (${s.data_type})`).join(', ');
    return h('tr', { 'data-collection': name },
      h('td', { class: 'name' }, h('strong', {}, name)),
      h('td', { class: `status status-${info.status}` }, info.status),
      h('td', { class: 'num points' }, fmtNumber(info.points_count)),
      h('td', { class: 'num partitions' }, partitions.length),
      h('td', { class: 'vectors' }, describeVectors(info.config.params)),
      h('td', { class: 'quantization' }, [...quant].join(', ')),
      h('td', { class: 'indexes' }, schema || '–'),
      actions);
  };

  const remove = async (name) => {
    confirming = null;
    try {
      await api('DELETE', collectionPath(name));
      if (state.collection === name) state.collection = null;
    } catch (e) {
      error.textContent = `Deleting ${name}: ${e.message}`;
    }
    refresh();
  };

  // The create form: the common settings as fields, or a whole Qdrant create body as JSON.
  const f = {
    // The server checks the name (and says what is wrong), so the page does not repeat its rules.
    name: h('input', { id: 'new-name', required: true, placeholder: 'articles' }),
    size: h('input', { id: 'new-size', type: 'number', min: 1, value: '4' }),
    distance: h('select', { id: 'new-distance' }, ['Cosine', 'Dot', 'Euclid', 'Manhattan'].map((d) => h('option', {}, d))),
    partitions: h('input', { id: 'new-partitions', type: 'number', min: 1, placeholder: 'default' }),
    quant: h('select', { id: 'new-quantization' }, ['none', 'int8', 'int4', 'binary', 'binary_two_bits', 'binary_one_and_half_bits'].map((q) => h('option', {}, q))),
    body: h('textarea', { id: 'new-body', placeholder: '{"vectors": {"text": {"size": 384, "distance": "Cosine"}}, "sparse_vectors": {"words": {"modifier": "idf"}}}' }),
  };
  const bodyError = h('p', { class: 'error', id: 'new-body-error' });
  const createError = h('p', { class: 'error', id: 'create-error', role: 'alert' });
  const created = h('p', { class: 'note', id: 'create-done' });
  const form = h('form', { id: 'create-form', class: 'panel', onsubmit: async (ev) => {
    ev.preventDefault();
    createError.textContent = '';
    created.textContent = '';
    const custom = readJson(f.body, bodyError, 'The create body', (v) => (isObject(v) ? null : 'it must be a JSON object'));
    if (!custom.ok) return;
    let body = custom.value;
    if (body === undefined) {
      body = { vectors: { size: Number(f.size.value), distance: f.distance.value } };
      if (f.partitions.value) body.shard_number = Number(f.partitions.value);
      // Binary settings are Qdrant's `binary` body with its `encoding`; the others are scalar types.
      const encodings = { binary: 'one_bit', binary_two_bits: 'two_bits', binary_one_and_half_bits: 'one_and_half_bits' };
      if (encodings[f.quant.value]) body.quantization_config = { binary: { encoding: encodings[f.quant.value] } };
      else if (f.quant.value !== 'none') body.quantization_config = { scalar: { type: f.quant.value } };
    }
    const name = f.name.value.trim();
    try {
      await api('PUT', collectionPath(name), body);
      created.textContent = `Created ${name}.`;
      state.collection = name;
      f.name.value = '';
      refresh();
    } catch (e) {
      createError.textContent = e.message;
    }
  } },
  h('h2', {}, 'Create a collection'),
  h('div', { class: 'row' },
    h('label', {}, 'Name', f.name),
    h('label', {}, 'Dimension', f.size),
    h('label', {}, 'Distance', f.distance),
    h('label', {}, 'Partitions', f.partitions),
    h('label', {}, 'Quantization', f.quant),
    h('button', { type: 'submit', id: 'create-submit' }, 'Create')),
  h('details', {}, h('summary', { class: 'note' }, 'Or paste a whole create body (named and sparse vectors, HNSW settings); it replaces the fields above'),
    f.body, bodyError),
  createError, created);

  const aliases = h('div', { id: 'aliases' });
  root.replaceChildren(
    h('h1', {}, 'Collections'),
    error, table, form,
    h('h2', {}, 'Aliases'), aliases);
  try {
    const { result } = await api('GET', '/aliases');
    aliases.replaceChildren(result.aliases.length
      ? h('ul', {}, result.aliases.map((a) => h('li', {}, `${a.alias_name} → ${a.collection_name}`)))
      : h('p', { class: 'note' }, 'No aliases.'));
  } catch (e) {
    aliases.replaceChildren(h('p', { class: 'error' }, e.message));
  }
  every(root, 3000, refresh);
}

// ---------------------------------------------------------------------------------------
// 2. Points browser: scroll pages, filter, open one point, delete it.

async function renderPoints(root) {
  const { select, empty } = await collectionPicker('points-collection', () => { pages = [undefined]; load(); });
  if (empty) { root.replaceChildren(h('h1', {}, 'Points'), noCollections()); return; }
  const filter = h('textarea', { id: 'points-filter', placeholder: '{"must": [{"key": "group", "match": {"value": "a"}}]}' });
  const filterError = h('p', { class: 'error', id: 'points-filter-error', role: 'alert' });
  const limit = h('select', { id: 'points-limit' }, [10, 20, 50, 100].map((n) => h('option', { value: n }, n)));
  limit.value = '20';
  const withVector = h('input', { type: 'checkbox', id: 'points-with-vector', checked: true });
  const error = h('p', { class: 'error', id: 'points-error', role: 'alert' });
  const summary = h('span', { id: 'points-summary', class: 'note' });
  const body = h('tbody');
  const prev = h('button', { class: 'secondary', id: 'points-prev', type: 'button', onclick: () => { pages.pop(); load(); } }, '← Previous');
  const next = h('button', { class: 'secondary', id: 'points-next', type: 'button', onclick: () => { pages.push(nextOffset); load(); } }, 'Next →');
  const detail = h('div', { id: 'point-detail' }, h('p', { class: 'note' }, 'Click a point to see it in full.'));
  // The offsets of the pages seen so far; the last one is the page shown (undefined: first).
  let pages = [undefined];
  let nextOffset = null;
  let currentFilter;
  // Loads can overlap (a new collection picked while a page loads); only the last one shows.
  let loads = 0;

  const apply = () => {
    const parsed = readJson(filter, filterError, 'The filter', checkFilter);
    if (!parsed.ok) return;
    currentFilter = parsed.value;
    pages = [undefined];
    load();
  };

  const load = async () => {
    const seq = ++loads;
    error.textContent = '';
    const name = state.collection;
    const req = { limit: Number(limit.value), with_payload: true, with_vector: withVector.checked };
    if (currentFilter) req.filter = currentFilter;
    const offset = pages[pages.length - 1];
    if (offset !== undefined) req.offset = offset;
    try {
      const [page, count] = await Promise.all([
        api('POST', `${collectionPath(name)}/points/scroll`, req),
        api('POST', `${collectionPath(name)}/points/count`, currentFilter ? { filter: currentFilter } : {}),
      ]);
      if (seq !== loads) return;
      nextOffset = page.result.next_page_offset;
      const pts = page.result.points;
      body.replaceChildren(...pts.map((p) => h('tr', { class: 'clickable', 'data-id': String(p.id), onclick: () => openPoint(p.id) },
        h('td', { class: 'mono id' }, String(p.id)),
        h('td', { class: 'mono payload' }, compact(p.payload)),
        h('td', { class: 'mono vector' }, vectorPreview(p.vector)))));
      if (!pts.length) body.append(h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No points match.')));
      summary.textContent = `${fmtNumber(count.result.count)} points${currentFilter ? ' match the filter' : ''} · page ${pages.length} · server ${fmtMs(page.time * 1000)}`;
      prev.disabled = pages.length <= 1;
      next.disabled = nextOffset === null || nextOffset === undefined;
    } catch (e) {
      if (seq !== loads) return;
      // A filter the server refuses is shown under the filter; anything else above the table.
      if (e.status === 400 && currentFilter) filterError.textContent = e.message;
      else error.textContent = e.message;
      body.replaceChildren();
    }
  };

  const openPoint = async (id) => {
    for (const tr of body.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const tr = body.querySelector(`tr[data-id="${CSS.escape(String(id))}"]`);
    if (tr) tr.classList.add('selected');
    detail.replaceChildren(h('p', { class: 'note' }, 'Loading…'));
    try {
      const { result } = await api('GET', `${collectionPath(state.collection)}/points/${enc(String(id))}`);
      const del = h('button', { class: 'danger', id: 'point-delete', type: 'button', onclick: () => {
        del.replaceWith(h('span', {},
          h('button', { class: 'danger confirm', id: 'point-delete-confirm', type: 'button', onclick: () => removePoint(id) }, `Delete point ${id}`), ' ',
          h('button', { class: 'secondary', type: 'button', onclick: () => openPoint(id) }, 'Keep')));
      } }, 'Delete this point');
      detail.replaceChildren(h('div', { class: 'panel' },
        h('h2', {}, `Point ${result.id}`),
        h('h3', {}, 'Payload'), h('pre', { id: 'point-payload' }, JSON.stringify(result.payload, null, 2)),
        h('h3', {}, 'Vector'), h('pre', { id: 'point-vector' }, JSON.stringify(result.vector)),
        del));
    } catch (e) {
      detail.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  };

  const removePoint = async (id) => {
    try {
      await api('POST', `${collectionPath(state.collection)}/points/delete?wait=true`, { points: [id] });
      detail.replaceChildren(h('p', { class: 'note', id: 'point-deleted' }, `Point ${id} deleted.`));
      load();
    } catch (e) {
      detail.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  };

  root.replaceChildren(
    h('h1', {}, 'Points'),
    h('div', { class: 'panel' },
      h('div', { class: 'row' },
        h('label', {}, 'Collection', select),
        h('label', {}, 'Page size', limit),
        h('label', { class: 'check' }, withVector, ' vectors'),
        h('button', { type: 'button', id: 'points-apply', onclick: apply }, 'Apply filter')),
      h('label', {}, "Filter (Qdrant's filter JSON; empty: every point)", filter),
      filterError),
    error,
    h('div', { class: 'row' }, prev, next, summary),
    h('div', { class: 'split' },
      h('table', { id: 'points-table' }, h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Payload'), h('th', {}, 'Vector'))), body),
      detail));
  limit.addEventListener('change', () => { pages = [undefined]; load(); });
  withVector.addEventListener('change', load);
  load();
}

// ---------------------------------------------------------------------------------------
// 3. Search console: a vector, a point id, BM25 text or a hybrid fusion; compare with exact.

async function renderSearch(root) {
  const { select, empty } = await collectionPicker('search-collection', route);
  if (empty) { root.replaceChildren(h('h1', {}, 'Search'), noCollections()); return; }
  let info;
  try {
    info = (await api('GET', collectionPath(state.collection))).result;
  } catch (e) {
    root.replaceChildren(h('h1', {}, 'Search'), h('p', { class: 'error' }, e.message));
    return;
  }
  const textFields = Object.entries(info.payload_schema || {}).filter(([, s]) => s.data_type === 'text').map(([k]) => k);
  const names = vectorNames(info);

  const mode = h('select', { id: 'search-mode' },
    h('option', { value: 'vector' }, 'Vector'),
    h('option', { value: 'point' }, 'Point id (its neighbours)'),
    h('option', { value: 'bm25' }, 'BM25 text'),
    h('option', { value: 'hybrid' }, 'Hybrid: vector + BM25'));
  const using = h('select', { id: 'search-using' }, names.map((n) => h('option', { value: n }, n || '(unnamed)')));
  const vector = h('textarea', { id: 'search-vector', placeholder: '[0.1, 0.2, 0.3, 0.4]  or  {"indices": [1, 7], "values": [0.5, 0.2]}' });
  const vectorError = h('p', { class: 'error', id: 'search-vector-error' });
  const point = h('input', { id: 'search-point', placeholder: '42 or a UUID' });
  const field = h('select', { id: 'search-field' }, textFields.map((n) => h('option', { value: n }, n)));
  const text = h('input', { id: 'search-text', placeholder: 'words to look for', size: 40 });
  const fusion = h('select', { id: 'search-fusion' }, h('option', { value: 'rrf' }, 'RRF'), h('option', { value: 'dbsf' }, 'DBSF'));
  const filter = h('textarea', { id: 'search-filter', placeholder: '{"must": [{"key": "group", "match": {"value": "a"}}]}' });
  const filterError = h('p', { class: 'error', id: 'search-filter-error' });
  const limit = h('input', { id: 'search-limit', type: 'number', min: 1, value: '10' });
  const ef = h('input', { id: 'search-ef', type: 'number', min: 1, placeholder: 'default' });
  const exact = h('input', { id: 'search-exact', type: 'checkbox' });
  const withPayload = h('input', { id: 'search-payload', type: 'checkbox', checked: true });
  const error = h('p', { class: 'error', id: 'search-error', role: 'alert' });
  const timing = h('p', { class: 'note', id: 'search-time' });
  const recall = h('p', { class: 'recall', id: 'search-recall' });
  const body = h('tbody');
  const results = h('table', { id: 'search-results' },
    h('thead', {}, h('tr', {}, h('th', { class: 'num' }, '#'), h('th', {}, 'Id'), h('th', { class: 'num' }, 'Score'), h('th', {}, 'Payload'))), body);

  const parts = {
    vector: h('div', { class: 'part-vector' }, h('label', {}, 'Query vector (JSON)', vector), vectorError),
    using: h('label', { class: 'part-using' }, 'Vector (using)', using),
    point: h('label', { class: 'part-point' }, 'Point id', point),
    text: h('div', { class: 'row part-text' },
      h('label', {}, 'Text field', field), h('label', {}, 'Text', text),
      textFields.length ? null : h('span', { class: 'note' }, 'No payload field has a text index; create one with PUT /collections/{name}/index.')),
    fusion: h('label', { class: 'part-fusion' }, 'Fusion', fusion),
  };
  const showParts = () => {
    const m = mode.value;
    parts.vector.hidden = !(m === 'vector' || m === 'hybrid');
    parts.using.hidden = !(m === 'vector' || m === 'hybrid' || m === 'point') || (names.length === 1 && names[0] === '');
    parts.point.hidden = m !== 'point';
    parts.text.hidden = !(m === 'bm25' || m === 'hybrid');
    parts.fusion.hidden = m !== 'hybrid';
  };
  mode.addEventListener('change', showParts);

  // The request body of the query on screen, with `params.exact` forced to `forceExact`
  // when given; null when a field is wrong (its error is then shown under it).
  const buildQuery = (forceExact) => {
    error.textContent = '';
    const f = readJson(filter, filterError, 'The filter', checkFilter);
    if (!f.ok) return null;
    const params = {};
    if (ef.value) params.hnsw_ef = Number(ef.value);
    const isExact = forceExact === undefined ? exact.checked : forceExact;
    if (isExact) params.exact = true;
    const k = Number(limit.value) || 10;
    const dense = () => {
      const v = readJson(vector, vectorError, 'The vector', (x) =>
        (Array.isArray(x) && x.length && x.every((c) => typeof c === 'number')) || (isObject(x) && Array.isArray(x.indices))
          ? null : 'give an array of numbers, or {"indices": [...], "values": [...]} for a sparse vector');
      if (!v.ok) return null;
      if (v.value === undefined) { vectorError.textContent = 'Paste a query vector.'; return null; }
      return v.value;
    };
    const q = { limit: k, with_payload: withPayload.checked };
    if (f.value) q.filter = f.value;
    const m = mode.value;
    if (m === 'vector' || m === 'point') {
      if (m === 'vector') {
        const v = dense();
        if (v === null) return null;
        q.query = v;
      } else {
        if (!point.value.trim()) { error.textContent = 'Give a point id.'; return null; }
        q.query = parsePointId(point.value);
      }
      if (using.value) q.using = using.value;
      if (Object.keys(params).length) q.params = params;
    } else if (m === 'bm25') {
      if (!field.value) { error.textContent = 'No text field to search.'; return null; }
      q.query = { bm25: { field: field.value, text: text.value } };
    } else {
      const v = dense();
      if (v === null) return null;
      if (!field.value) { error.textContent = 'No text field to search.'; return null; }
      // Each branch fetches more than k so that the fusion has candidates to reorder.
      const branch = { query: v, limit: k * 2 };
      if (using.value) branch.using = using.value;
      if (Object.keys(params).length) branch.params = params;
      q.prefetch = [branch, { query: { bm25: { field: field.value, text: text.value } }, limit: k * 2 }];
      q.query = { fusion: fusion.value };
    }
    return q;
  };

  const run = async (q) => {
    try {
      return await api('POST', `${collectionPath(state.collection)}/points/query`, q);
    } catch (e) {
      if (e.status === 400 && /filter/i.test(e.message)) filterError.textContent = e.message;
      else error.textContent = e.message;
      return null;
    }
  };

  let lastHits = [];
  const search = async () => {
    // The last answer goes at once, so that what is on screen is always this query's.
    recall.textContent = '';
    timing.textContent = '';
    body.replaceChildren();
    const q = buildQuery();
    if (!q) return;
    const answer = await run(q);
    if (!answer) { body.replaceChildren(); timing.textContent = ''; return; }
    lastHits = answer.result.points;
    showHits(lastHits, null);
    timing.textContent = `${lastHits.length} hits · server ${fmtMs(answer.time * 1000)} · round trip ${fmtMs(answer.elapsed)}` +
      (answer.partial ? ` · PARTIAL: missing ${answer.partial.missing_partitions.map((p) => `partition ${p.partition} (${p.reason})`).join(', ')}` : '');
  };

  const showHits = (hits, exactIds) => {
    body.replaceChildren(...hits.map((p, i) => h('tr', {
      'data-id': String(p.id),
      class: exactIds && !exactIds.has(String(p.id)) ? 'miss' : null,
    },
    h('td', { class: 'num' }, i + 1),
    h('td', { class: 'mono id' }, String(p.id)),
    h('td', { class: 'num score' }, typeof p.score === 'number' ? p.score.toFixed(4) : p.score),
    h('td', { class: 'mono payload' }, compact(p.payload)))));
    if (!hits.length) body.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No hits.')));
  };

  // Recall@k of the query on screen: the share of the exact top k (`params.exact`, every
  // point scored) that the approximate answer found. A query with `exact` already on, or a
  // BM25 one, compares with itself and reads 1.
  const compare = async () => {
    recall.textContent = '';
    const approxQ = buildQuery();
    const exactQ = buildQuery(true);
    if (!approxQ || !exactQ) return;
    const [approx, truth] = await Promise.all([run(approxQ), run(exactQ)]);
    if (!approx || !truth) return;
    lastHits = approx.result.points;
    const exactIds = new Set(truth.result.points.map((p) => String(p.id)));
    const found = lastHits.filter((p) => exactIds.has(String(p.id))).length;
    const k = exactIds.size;
    showHits(lastHits, exactIds);
    const missing = truth.result.points.filter((p) => !lastHits.some((a) => String(a.id) === String(p.id))).map((p) => String(p.id));
    recall.textContent = k === 0 ? 'recall@0: the exact search found nothing'
      : `recall@${k} against exact: ${(found / k).toFixed(2)} (${found} of ${k})` +
        (missing.length ? ` · missed: ${missing.join(', ')}` : '');
    recall.dataset.recall = k ? String(found / k) : '';
    timing.textContent = `approximate: server ${fmtMs(approx.time * 1000)} · exact: server ${fmtMs(truth.time * 1000)}`;
  };

  root.replaceChildren(
    h('h1', {}, 'Search'),
    h('div', { class: 'panel' },
      h('div', { class: 'row' }, h('label', {}, 'Collection', select), h('label', {}, 'Query', mode), parts.using, parts.fusion, parts.point),
      parts.vector, parts.text,
      h('label', {}, 'Filter (optional)', filter), filterError,
      h('div', { class: 'row' },
        h('label', {}, 'Limit (k)', limit),
        h('label', {}, 'hnsw_ef', ef),
        h('label', { class: 'check' }, exact, ' exact'),
        h('label', { class: 'check' }, withPayload, ' payloads'),
        h('button', { type: 'button', id: 'search-run', onclick: search }, 'Search'),
        h('button', { type: 'button', class: 'secondary', id: 'search-compare', onclick: compare }, 'Compare with exact'))),
    error, timing, recall, results);
  showParts();
}

// ---------------------------------------------------------------------------------------
// 4. Actors: every partition of a collection as a live tile.

async function renderActors(root) {
  const { select, empty } = await collectionPicker('actors-collection', route);
  if (empty) { root.replaceChildren(h('h1', {}, 'Actors'), noCollections()); return; }
  const tiles = h('div', { class: 'tiles', id: 'actor-tiles' });
  const error = h('p', { class: 'error', id: 'actors-error', role: 'alert' });
  const updated = h('span', { class: 'note', id: 'actors-updated' });
  const faults = h('input', { type: 'checkbox', id: 'fault-toggle' });
  const faultNote = h('p', { class: 'note', id: 'fault-note' });
  // Restart counts of the last refresh, to highlight a partition that just restarted.
  const seen = new Map();
  const restartedAt = new Map();

  const inject = async (id, fault) => {
    try {
      await api('POST', `${collectionPath(state.collection)}/partitions/${id}/fault`, fault);
      state.faultInjection = true;
      faultNote.textContent = `Injected ${Object.keys(fault)[0]} into partition ${id}.`;
    } catch (e) {
      // Without server.enable_fault_injection the route is not registered at all.
      if (e.status === 404 && /no route/.test(e.message)) {
        state.faultInjection = false;
        faultNote.textContent = 'Fault injection is off on this server (server.enable_fault_injection).';
      } else {
        faultNote.textContent = e.message;
      }
    }
    refresh();
  };

  const tile = (p) => {
    const depth = p.mailbox_depth || 0;
    const cap = p.mailbox_capacity || 1;
    const ix = p.index || {};
    const rows = [
      ['State', h('span', { class: `state state-${p.state}` }, p.state.replace('_', '-'))],
      ['Restarts', h('span', { class: 'restarts', 'data-value': p.restarts }, p.restarts)],
      ['Points', h('span', { class: 'points' }, fmtNumber(p.points))],
      ['Mailbox', h('span', {}, `${depth} / ${cap}`, h('div', { class: 'bar', title: 'messages waiting / capacity' },
        h('span', { style: { width: `${Math.min(100, (100 * depth) / cap).toFixed(1)}%` } })))],
      ['Index', ix.levels === undefined ? '–' : ix.levels > 0 ? `HNSW, ${ix.levels} levels` : 'exact scan'],
      ['Memory', fmtBytes(ix.index_size)],
      ['Deleted slots', fmtNumber(ix.deleted)],
      ['Quantization', ix.quantization || 'none'],
    ];
    for (const [name, v] of Object.entries(ix.vectors || {})) rows.push([`“${name}”`, `${fmtNumber(v.points)} vectors${v.quantization && v.quantization !== 'none' ? `, ${v.quantization}` : ''}`]);
    if (p.last_failure) rows.push(['Last failure', h('span', { class: 'failure' }, p.last_failure)]);
    if (p.stop_reason) rows.push(['Stopped', h('span', { class: 'error' }, p.stop_reason)]);
    if (p.storage_error) {
      const s = p.storage_error;
      rows.push(['Read-only', h('span', { class: 'error' }, `${s.disk_full ? 'disk full: ' : ''}${s.reason} ` +
        `(for ${fmtMs(s.since_ms)}, ${s.retries} retries, next in ${fmtMs(s.next_retry_ms)})`)]);
    }
    const when = restartedAt.get(p.id);
    if (when) rows.push(['Restarted', `at ${when.toLocaleTimeString()} (seen here)`]);
    const recent = when && Date.now() - when.getTime() < 4000;
    return h('div', { class: `tile state-tile-${p.state}${recent ? ' flash' : ''}`, 'data-partition': p.id },
      h('h3', {}, `Partition ${p.id}`, h('span', { class: `pill state-${p.state}` }, p.state)),
      h('dl', {}, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      faults.checked && state.faultInjection !== false ? h('div', { class: 'buttons' },
        h('button', { class: 'danger inject-panic', type: 'button', onclick: () => inject(p.id, { panic: 'injected from the dashboard' }) }, 'Panic'),
        h('button', { class: 'secondary inject-stall', type: 'button', onclick: () => inject(p.id, { stall_ms: 2000 }) }, 'Stall 2 s')) : null);
  };

  const refresh = async () => {
    try {
      const { result } = await api('GET', `${collectionPath(state.collection)}/partitions`);
      error.textContent = '';
      for (const p of result.partitions) {
        if (seen.has(p.id) && p.restarts > seen.get(p.id)) restartedAt.set(p.id, new Date());
        seen.set(p.id, p.restarts);
      }
      tiles.replaceChildren(...result.partitions.map(tile));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()} · refreshed every 1.5 s`;
    } catch (e) {
      error.textContent = e.message;
    }
  };
  faults.addEventListener('change', refresh);

  root.replaceChildren(
    h('h1', {}, 'Actors'),
    h('div', { class: 'row panel' }, h('label', {}, 'Collection', select), updated,
      h('label', { class: 'check', title: 'Needs server.enable_fault_injection; for tests and demonstrations' }, faults, ' fault injection buttons')),
    faultNote, error, tiles,
    h('p', { class: 'note' }, 'Each tile is one PartitionActor: a thread owning its points, index and log, behind a bounded mailbox. ' +
      'A partition that panics is rebuilt from its store by its supervisor and counted in Restarts; ' +
      'more failures than supervision.max-restarts within supervision.within stop it.'));
  every(root, 1500, refresh);
}

// ---------------------------------------------------------------------------------------
// 5. Cluster: members, leader and term, placement.

async function renderCluster(root) {
  const content = h('div', { id: 'cluster' });
  root.replaceChildren(h('h1', {}, 'Cluster'), content);
  every(root, 3000, async () => {
    let c;
    try {
      c = (await api('GET', '/cluster')).result;
    } catch (e) {
      content.replaceChildren(h('p', { class: 'error' }, e.message));
      return;
    }
    if (c.status !== 'enabled') {
      content.replaceChildren(h('p', { class: 'note', id: 'cluster-disabled' },
        'This server runs alone (remoting.enabled is false): every partition is local. See the README\'s "Cluster" section to run several nodes.'));
      return;
    }
    const raft = c.raft_info || {};
    const members = Object.entries(c.peers || {}).sort(([a], [b]) => Number(a) - Number(b));
    const holders = new Map();
    for (const [name, parts] of Object.entries(c.collections || {})) {
      for (const p of parts) {
        const node = String(p.replicas[0]);
        holders.set(node, (holders.get(node) || 0) + 1);
      }
    }
    content.replaceChildren(
      h('div', { class: 'panel row' },
        h('span', {}, 'This node: ', h('strong', { id: 'cluster-self' }, String(c.peer_id))),
        h('span', {}, 'Leader: ', h('strong', { id: 'cluster-leader' }, raft.leader === null || raft.leader === undefined ? 'none' : String(raft.leader))),
        h('span', {}, 'Term: ', h('strong', { id: 'cluster-term' }, String(raft.term))),
        h('span', {}, 'Role: ', h('strong', {}, String(raft.role))),
        h('span', {}, 'Committed: ', h('strong', {}, String(raft.commit ?? '–')))),
      h('h2', {}, 'Members'),
      h('table', { id: 'cluster-members' },
        h('thead', {}, h('tr', {}, ['Node', 'Node-to-node', 'REST', 'Voter', 'Partitions served', ''].map((t) =>
          h('th', { class: t === 'Partitions served' ? 'num' : null }, t)))),
        h('tbody', {}, members.map(([id, m]) => h('tr', { 'data-node': id },
          h('td', { class: 'mono' }, id),
          h('td', { class: 'mono' }, m.uri),
          h('td', { class: 'mono' }, m.rest || '–'),
          h('td', {}, m.voter ? 'yes' : 'no'),
          h('td', { class: 'num' }, holders.get(id) || 0),
          h('td', {}, [String(raft.leader) === id ? h('span', { class: 'pill' }, 'leader') : null, ' ',
            String(c.peer_id) === id ? h('span', { class: 'pill' }, 'this node') : null]))))),
      h('h2', {}, 'Placement'),
      h('p', { class: 'note' }, 'Each partition\'s copies: its primary (which orders and ships its writes), the primary\'s term (one more at every failover), and every copy, stale ones (missed writes, waiting for a recovery from the primary; they serve nothing) marked.'),
      h('table', { id: 'cluster-placement' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Collection'), h('th', { class: 'num' }, 'Partition'), h('th', {}, 'Primary'),
          h('th', { class: 'num' }, 'Term'), h('th', {}, 'Copies'))),
        h('tbody', {}, Object.entries(c.collections || {}).flatMap(([name, parts]) => parts.map((p) => {
          const stale = new Set((p.stale || []).map(String));
          return h('tr', {},
            h('td', {}, name), h('td', { class: 'num' }, p.partition), h('td', { class: 'mono' }, String(p.replicas[0])),
            h('td', { class: 'num' }, String(p.term ?? 0)),
            h('td', { class: 'mono' }, p.replicas.map((n) => stale.has(String(n))
              ? h('span', { class: 'error', title: 'stale: recovering from the primary' }, `${n} (stale) `)
              : h('span', {}, `${n} `))));
        })))));
  });
}

// ---------------------------------------------------------------------------------------
// 6. Metrics: request rates and latency percentiles per route, from /metrics/history.

const COLORS = ['#7b3fc4', '#1b8a4b', '#d0661a', '#2b6cb0', '#c53030', '#0f8a8a', '#a0860b', '#6b6880'];

// A line chart on a canvas: `xs` are Unix seconds, each series a list of numbers or nulls
// (gaps). Drawn by hand: a charting library would be the largest file of the page.
function drawChart(canvas, xs, series, unit) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 600;
  const height = canvas.clientHeight || 220;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext('2d');
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const pad = { left: 58, right: 10, top: 10, bottom: 24 };
  const w = width - pad.left - pad.right;
  const hgt = height - pad.top - pad.bottom;
  let max = 0;
  for (const s of series) for (const v of s.values) if (v !== null && v > max) max = v;
  max = niceCeil(max || 1);
  const x = (i) => pad.left + (xs.length <= 1 ? 0 : (i * w) / (xs.length - 1));
  const y = (v) => pad.top + hgt - (v / max) * hgt;
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#dedbea';
  g.fillStyle = '#6b6880';
  g.lineWidth = 1;
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    g.beginPath();
    g.moveTo(pad.left, y(v));
    g.lineTo(pad.left + w, y(v));
    g.stroke();
    g.textAlign = 'right';
    g.fillText(`${formatTick(v)}${unit}`, pad.left - 6, y(v) + 4);
  }
  g.textAlign = 'center';
  const now = xs[xs.length - 1];
  const span = now - xs[0];
  const ago = (i) => {
    const secs = now - xs[i];
    if (!secs) return 'now';
    return span <= 180 ? `-${secs} s` : `-${Math.round(secs / 60)} min`;
  };
  const step = Math.max(1, Math.round(xs.length / 5));
  for (let i = xs.length - 1; i >= 0; i -= step) g.fillText(ago(i), x(i), height - 6);
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = s.width || 1.6;
    g.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      if (drawing) g.lineTo(x(i), y(v)); else g.moveTo(x(i), y(v));
      drawing = true;
    });
    g.stroke();
    // A value between two gaps has no line to show it: a dot does.
    s.values.forEach((v, i) => {
      if (v === null || (s.values[i - 1] ?? null) !== null || (s.values[i + 1] ?? null) !== null) return;
      g.beginPath();
      g.arc(x(i), y(v), 2.5, 0, 2 * Math.PI);
      g.fill();
    });
  }
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function formatTick(v) {
  if (v === 0) return '0';
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1).replace(/\.0$/, '');
  return v.toPrecision(2);
}

function legend(series) {
  return h('div', { class: 'legend' }, series.map((s) => h('span', {}, h('i', { style: { background: s.color } }), s.label)));
}

async function renderMetrics(root) {
  const rateCanvas = h('canvas', { id: 'chart-rate' });
  const latencyCanvas = h('canvas', { id: 'chart-latency' });
  const rateLegend = h('div');
  const latencyLegend = h('div');
  const latencyTitle = h('h2', {}, 'Latency, all routes');
  const error = h('p', { class: 'error', id: 'metrics-error', role: 'alert' });
  const body = h('tbody');
  const note = h('p', { class: 'note', id: 'metrics-window' });
  // The route whose percentiles the latency chart shows ("*": every route together).
  let selected = '* *';

  const refresh = async () => {
    let m;
    try {
      m = (await api('GET', '/metrics/history')).result;
      error.textContent = '';
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    const slot = m.slot_seconds;
    // The charts start at the first slot with requests (at least two minutes back), so that
    // a server started a minute ago does not squeeze its data into the right edge.
    const all = m.routes[0].slots.count;
    const first = Math.min(Math.max(0, all.findIndex((n) => n > 0)), all.length - Math.round(120 / slot) - 1);
    const from = Math.max(0, first);
    const cut = (values) => values.slice(from);
    const xs = m.slot_starts.slice(from);
    const key = (r) => `${r.method} ${r.route}`;
    const routes = m.routes.slice(1).sort((a, b) => b.count - a.count);
    const top = routes.slice(0, 6);
    const rates = [{ label: 'all routes', color: '#241a33', width: 2.4, values: cut(all).map((n) => n / slot) }]
      .concat(top.map((r, i) => ({ label: key(r), color: COLORS[i % COLORS.length], values: cut(r.slots.count).map((n) => n / slot) })));
    drawChart(rateCanvas, xs, rates, '/s');
    rateLegend.replaceChildren(legend(rates));
    const chosen = m.routes.find((r) => key(r) === selected) || m.routes[0];
    latencyTitle.textContent = chosen.route === '*' ? 'Latency, all routes' : `Latency, ${key(chosen)}`;
    const lat = [
      { label: 'p50', color: COLORS[1], values: cut(chosen.slots.p50_ms) },
      { label: 'p90', color: COLORS[2], values: cut(chosen.slots.p90_ms) },
      { label: 'p99', color: COLORS[4], values: cut(chosen.slots.p99_ms) },
    ];
    drawChart(latencyCanvas, xs, lat, ' ms');
    latencyLegend.replaceChildren(legend(lat));
    const windowSecs = m.slot_starts.length * slot;
    body.replaceChildren(...[m.routes[0], ...routes].map((r) => h('tr', {
      class: `clickable${key(r) === key(chosen) ? ' selected' : ''}`,
      'data-route': key(r),
      onclick: () => { selected = key(r); refresh(); },
    },
    h('td', { class: 'mono' }, r.route === '*' ? 'all routes' : key(r)),
    h('td', { class: 'num count' }, fmtNumber(r.count)),
    h('td', { class: 'num' }, (r.count / windowSecs).toFixed(2)),
    h('td', { class: 'num' }, fmtNumber(r.errors)),
    h('td', { class: 'num' }, fmtMs(r.p50_ms)),
    h('td', { class: 'num' }, fmtMs(r.p90_ms)),
    h('td', { class: 'num' }, fmtMs(r.p99_ms)))));
    note.textContent = `The last ${Math.round(windowSecs / 60)} minutes in ${slot}-second slots, as this server measured them ` +
      '(from a request\'s arrival to its answer; the page\'s own requests included). Click a route to chart its latency.';
  };

  root.replaceChildren(
    h('h1', {}, 'Metrics'), error, note,
    h('div', { class: 'charts' },
      h('div', { class: 'panel chart' }, h('h2', {}, 'Requests per second'), rateCanvas, rateLegend),
      h('div', { class: 'panel chart' }, latencyTitle, latencyCanvas, latencyLegend)),
    h('table', { id: 'metrics-routes' },
      h('thead', {}, h('tr', {}, ['Route', 'Requests', 'Per second (window)', 'Errors (4xx, 5xx)', 'p50', 'p90', 'p99'].map((t, i) =>
        h('th', { class: i ? 'num' : null }, t)))),
      body),
    h('p', { class: 'note' }, 'Prometheus can scrape the same figures, and partition gauges, from ', h('code', {}, '/metrics'), '.'));
  every(root, 5000, refresh);
}

// ---------------------------------------------------------------------------------------
// Navigation and the API key.

const VIEWS = {
  collections: renderCollections,
  points: renderPoints,
  search: renderSearch,
  actors: renderActors,
  cluster: renderCluster,
  metrics: renderMetrics,
};

async function route() {
  const name = (location.hash.replace(/^#\/?/, '') || 'collections').split('?')[0];
  const render = VIEWS[name] || VIEWS.collections;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  const root = h('div', { 'data-view': name }, h('p', { class: 'note' }, 'Loading…'));
  root.generation = ++state.generation;
  view().replaceChildren(root);
  try {
    await render(root);
  } catch (e) {
    if (e.status !== 401 && e.status !== 403) root.replaceChildren(h('p', { class: 'error' }, e.message));
  }
}

// Hides every view and asks for the key: nothing of the data stays on screen.
function showLogin(status, message) {
  state.generation++;
  view().replaceChildren();
  $('#nav').hidden = true;
  $('#server-info').textContent = '';
  $('#sign-out').hidden = !state.key;
  $('#login').hidden = false;
  $('#login-error').textContent = status === 403 ? `The server refused this key: ${message}` : (state.key ? message : '');
  $('#login-key').focus();
}

async function start() {
  $('#login').hidden = true;
  let root;
  try {
    root = (await api('GET', '/', undefined, { raw: true })).result;
  } catch (e) {
    if (e.status !== 401 && e.status !== 403) view().replaceChildren(h('p', { class: 'error' }, e.message));
    return;
  }
  $('#nav').hidden = false;
  $('#sign-out').hidden = !state.key;
  $('#server-info').textContent = root ? `${root.name} · Ametist ${root.ametist_version}` : '';
  await route();
}

document.addEventListener('DOMContentLoaded', () => {
  $('#login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.key = $('#login-key').value;
    sessionStorage.setItem(KEY_STORAGE, state.key);
    $('#login-key').value = '';
    start();
  });
  $('#sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(KEY_STORAGE);
    state.key = null;
    showLogin(401, '');
  });
  window.addEventListener('hashchange', () => { if ($('#login').hidden) route(); });
  start();
});
