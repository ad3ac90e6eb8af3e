// Dead letters: list with filters (GET /admin/dlq), retry, discard, and a bulk retry behind a confirmation step.
import { api, query } from './api.js'
import { announce, confirmStep, eventLink, field, h, table, when } from './dom.js'

const FILTERS = ['status', 'tool', 'event_type', 'from', 'to']
const STATUSES = [['', 'any'], ['pending', 'pending'], ['retrying', 'retrying'], ['failed', 'failed'], ['resolved', 'resolved'], ['discarded', 'discarded']]

const refresh = () => document.dispatchEvent(new Event('console:refresh'))

/** Re-queues DLQ row `id` (POST /admin/dlq/:id/retry) and redraws the page. */
export async function retryEntry(id, button) {
  button.disabled = true
  try {
    const { requeued } = await api('POST', `/admin/dlq/${id}/retry`)
    announce(`DLQ entry ${id} re-queued (retry ${requeued.retry_count}).`, 'ok')
    refresh()
  } catch (err) {
    announce(`Retry of DLQ entry ${id} failed: ${err.message}`, 'error')
    button.disabled = false
  }
}

async function discard(id) {
  try {
    await api('POST', `/admin/dlq/${id}/discard`)
    announce(`DLQ entry ${id} discarded.`, 'ok')
    refresh()
  } catch (err) {
    announce(`Discard of DLQ entry ${id} failed: ${err.message}`, 'error')
  }
}

/** The DLQ page: filters in the hash (#/dlq?tool=…), one page of entries, per-row actions, a bulk retry. */
export async function dlqPage(params) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? '']))
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter dead letters' },
    field('Status', 'status', { value: filters.status, options: STATUSES }),
    field('Tool', 'tool', { value: filters.tool }),
    field('Event type', 'event_type', { value: filters.event_type }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Filter'), h('a', { href: '#/dlq', class: 'btn secondary' }, 'Clear')))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const data = new FormData(form)
    location.hash = `#/dlq${query(Object.fromEntries(FILTERS.map((k) => [k, String(data.get(k) ?? '').trim()])))}`
  })
  const cursor = params.get('cursor') ?? ''
  const page = await api('GET', `/admin/dlq${query({ ...filters, cursor, limit: 50 })}`)
  const rows = page.entries.map((d) => {
    const actions = h('div', { class: 'row-actions' })
    if (d.status === 'pending' || d.status === 'failed') {
      if (!d.undecodable) actions.append(h('button', { type: 'button', 'aria-label': `Retry DLQ entry ${d.id}`, onclick: (e) => retryEntry(d.id, e.currentTarget) }, 'Retry'), ' ')
      const discardButton = h('button', { type: 'button', class: 'secondary', 'aria-label': `Discard DLQ entry ${d.id}`,
        onclick: () => confirmStep(discardButton, `Discard DLQ entry ${d.id}? It will not be retried again.`, 'Discard', () => discard(d.id)) }, 'Discard')
      actions.append(discardButton)
    }
    return [String(d.id), d.undecodable ? d.event_id : eventLink(d.tool_id, d.event_id), d.tool_id, d.event_type ?? '—',
      h('span', { class: `badge ${d.status}` }, d.status), h('span', { class: 'error-text' }, `${d.error_code ?? d.error_class}: ${d.error}`),
      String(d.retry_count), when(d.failed_at), actions]
  })
  const bulkFilter = Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== ''))
  const scope = Object.keys(bulkFilter).length ? Object.entries(bulkFilter).map(([k, v]) => `${k} = ${v}`).join(', ') : 'every pending and failed entry'
  const bulk = h('button', { type: 'button', onclick: () => confirmStep(bulk, `Re-queue ${scope}? Each matching pending or failed entry goes back on the stream.`,
    'Re-queue them', async () => {
      try {
        const result = await api('POST', '/admin/dlq/retry', Object.keys(bulkFilter).length ? bulkFilter : { all: true })
        announce(`${result.requeued} DLQ entr${result.requeued === 1 ? 'y' : 'ies'} re-queued.`, 'ok')
        refresh()
      } catch (err) {
        announce(`Bulk retry failed: ${err.message}`, 'error')
      }
    }) }, 'Retry all matching…')
  return h('section', { 'aria-labelledby': 'dlq-title' },
    h('h1', { id: 'dlq-title' }, 'Dead letters'), form,
    h('p', { class: 'bulk' }, bulk),
    table(`${page.entries.length} entr${page.entries.length === 1 ? 'y' : 'ies'}, newest first`, ['Id', 'Event', 'Tool', 'Type', 'Status', 'Error', 'Retries', 'Failed', 'Actions'], rows),
    page.next_cursor ? h('p', {}, h('a', { class: 'btn secondary', href: `#/dlq${query({ ...filters, cursor: page.next_cursor })}` }, 'Next page')) : null)
}
