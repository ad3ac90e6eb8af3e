// Events: the search form (GET /admin/events) and one event's page (its fate, content, dead letters and replay).
import { api, ApiError, query } from './api.js'
import { retryEntry } from './dlq.js'
import { eventLink, facts, field, h, json, table, when } from './dom.js'
import { replayMatching, replayPanel } from './replay.js'

const FILTERS = ['tool', 'tenant', 'event_type', 'repository', 'status', 'delivery_id', 'from', 'to']
const STATUSES = [['', 'any'], ['stored', 'stored'], ['forwarded', 'forwarded'], ['pending_delivery', 'pending delivery'], ['dead_lettered', 'dead-lettered'], ['failed', 'failed']]

/** `datetime-local` gives local time without a zone; the API wants an ISO instant. */
function isoOf(local) {
  return local ? new Date(local).toISOString() : ''
}

// a hand-edited address may hold no time at all: the field stays empty and the API's answer says what is wrong
function localOf(iso) {
  const d = new Date(iso)
  if (!iso || Number.isNaN(d.getTime())) return ''
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
}

/** The search page: filters in the hash (#/events?tool=…), results newest first, a cursor for the next page. */
export async function eventsPage(params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? '']))
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Search events' },
    field('Tool', 'tool', { value: filters.tool }),
    field('Tenant', 'tenant', { value: filters.tenant }),
    field('Event type', 'event_type', { value: filters.event_type, hint: 'exact, or a glob: webhook.github.*' }),
    field('Repository', 'repository', { value: filters.repository }),
    field('Status', 'status', { value: filters.status, options: STATUSES }),
    field('Delivery id', 'delivery_id', { value: filters.delivery_id }),
    field('From', 'from', { type: 'datetime-local', value: localOf(filters.from) }),
    field('To', 'to', { type: 'datetime-local', value: localOf(filters.to) }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Search'), h('a', { href: '#/events', class: 'btn secondary' }, 'Clear')))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const data = new FormData(form)
    const next = Object.fromEntries(FILTERS.map((k) => [k, String(data.get(k) ?? '').trim()]))
    next.from = isoOf(next.from)
    next.to = isoOf(next.to)
    location.hash = `#/events${query(next)}`
  })
  const cursor = params.get('cursor') ?? ''
  const result = await api('GET', `/admin/events${query({ ...filters, cursor, limit: 50 })}`)
  const rows = result.events.map((e) => [
    when(e.received_at ?? e.failed_at), e.tool_id, eventLink(e.tool_id, e.delivery_id), e.event_type ?? '—', e.repository || '—',
    h('span', { class: `badge ${e.status}` }, e.status.replace('_', ' '))])
  const more = result.next_cursor
    ? h('a', { class: 'btn secondary', href: `#/events${query({ ...filters, cursor: result.next_cursor })}` }, 'Next page')
    : null
  return h('section', { 'aria-labelledby': 'events-title' },
    h('h1', { id: 'events-title' }, 'Events'), form,
    table(`${result.events.length} event${result.events.length === 1 ? '' : 's'}, newest first`, ['Received', 'Tool', 'Delivery id', 'Type', 'Repository', 'Status'], rows),
    replayMatching(filters),
    h('p', {}, cursor ? h('a', { class: 'btn secondary', href: `#/events${query(filters)}` }, 'First page') : null, ' ', more))
}

/** The per-destination fan-out state (`deliveries`: destination id → state, attempts, last error code, time). */
function deliveries(fate) {
  const entries = Object.entries(fate.deliveries ?? {})
  return [h('h2', {}, 'Destinations'), entries.length === 0
    ? h('p', {}, 'This event went to no destination.')
    : table('Delivery per destination', ['Destination', 'State', 'Retries', 'Last error', 'Since'], entries.map(([id, d]) => [
      id, h('span', { class: `badge ${d.state}`, 'data-destination': id }, d.state), String(d.attempts ?? 0), d.error_code ?? '—', when(d.at)]))]
}

/** Milliseconds as "840 ms" or "2.4 s". */
function duration(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`
}

/** The HTTP delivery attempts per destination (`attempts`), oldest first, each with its outcome. */
function attempts(fate) {
  const list = fate.attempts ?? []
  return [h('h2', {}, 'Delivery attempts'), ...list.length === 0
    ? [h('p', {}, 'No HTTP delivery was attempted for this event.')]
    : list.map(({ destination_id: id, attempts: rows }) => h('section', { id: `attempts-${id}`, 'aria-label': `Delivery attempts to ${id}` },
      table(`To ${id}: ${rows.length} attempt${rows.length === 1 ? '' : 's'}, oldest first`, ['Attempt', 'Started', 'Duration', 'HTTP status', 'Error', 'Next attempt'],
        rows.map((a) => [String(a.attempt), when(a.started_at), duration(a.duration_ms), a.http_status === null ? 'no response' : String(a.http_status),
          a.error_code ? [`${a.error_code} (${a.error_class})`, a.response_body ? h('details', {}, h('summary', {}, 'Response'), h('pre', { class: 'json' }, a.response_body)) : null] : '—',
          when(a.next_attempt_at)]))))]
}

/** One event: summary, per-destination state and attempts, replay, payload, kept headers, dead letters, fate ledger. */
export async function eventPage(toolId, deliveryId) {
  const path = `/admin/tools/${encodeURIComponent(toolId)}/events/${encodeURIComponent(deliveryId)}`
  const [{ event: fate }, content] = await Promise.all([api('GET', path), api('GET', `${path}/content`).catch((err) => {
    if (err instanceof ApiError && err.status === 404) return null
    throw err
  })])
  const stored = fate.stored
  const replay = stored ? await replayPanel(fate.tool_id, deliveryId) : null
  const headers = content?.headers
  return h('article', { 'aria-labelledby': 'event-title' },
    h('p', {}, h('a', { href: '#/events' }, '← Events')),
    h('h1', { id: 'event-title' }, 'Event ', h('code', {}, deliveryId)),
    facts([['Tool', fate.tool_id], ['State', h('span', { class: `badge ${fate.state}`, id: 'event-state' }, fate.state.replace('_', ' '))],
      ['Type', fate.event_type], ['Accepted', when(fate.accepted_at)], ['Tenant', stored?.tenant_id], ['Repository', stored?.repository || null],
      ['Stream entry', stored?.stream_id], ['Stored', when(stored?.processed_at)], ['Forwarded', when(stored?.forwarded_at)], ['Idempotency marker', fate.idempotency]]),
    deliveries(fate),
    attempts(fate),
    replay,
    h('h2', {}, 'Payload'),
    content ? json(content.payload, 'Payload') : h('p', {}, 'No payload is kept for this event.'),
    content?.transformed !== null && content?.transformed !== undefined ? [h('h2', {}, 'Transformed'), json(content.transformed, 'Transformed payload')] : null,
    h('h2', {}, 'Headers'),
    headers
      ? table('Inbound headers (credentials are never kept)', ['Name', 'Value'], Object.entries(headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]))
      : h('p', {}, 'Headers are kept only with a dead letter; this event has none.'),
    h('h2', {}, 'Dead letters'),
    table('DLQ rows of this event', ['Id', 'Status', 'Error', 'Retries', 'Failed', ''], fate.dlq.map((d) => [
      h('a', { href: `#/dlq?tool=${encodeURIComponent(fate.tool_id)}` }, String(d.id)), d.status, `${d.error_code ?? d.error_class}: ${d.error}`, String(d.retry_count), when(d.failed_at),
      d.status === 'pending' || d.status === 'failed' ? h('button', { type: 'button', 'aria-label': `Retry DLQ entry ${d.id}`, onclick: (e) => retryEntry(d.id, e.currentTarget) }, 'Retry') : ''])),
    h('h2', {}, 'Fate ledger'),
    h('ol', { class: 'ledger' }, fate.history.length === 0 ? h('li', {}, 'No audit rows.') : fate.history.map((entry) =>
      h('li', {}, when(entry.at), ' ', h('strong', {}, entry.action), ` by ${entry.actor}`,
        entry.details ? h('details', {}, h('summary', {}, 'Details'), json(entry.details, `Details of ${entry.action}`)) : null))))
}
