// Overview: the queue, the DLQ and recent rates (GET /admin/overview), and open circuit breakers (GET /admin/breakers).
import { api } from './api.js'
import { facts, h, table, when } from './dom.js'

function rate(perSecond) {
  return `${perSecond.toFixed(2)} /s`
}

function age(seconds) {
  if (seconds < 120) return `${seconds.toFixed(1)} s`
  if (seconds < 7200) return `${(seconds / 60).toFixed(1)} min`
  return `${(seconds / 3600).toFixed(1)} h`
}

function card(title, value, detail) {
  return h('div', { class: 'card' }, h('h2', {}, title), h('p', { class: 'figure' }, value), detail ? h('p', { class: 'detail' }, detail) : null)
}

/** The overview page. */
export async function overviewPage() {
  const [o, { breakers }] = await Promise.all([api('GET', '/admin/overview'), api('GET', '/admin/breakers')])
  const { queue, dlq, rates } = o
  return h('section', { 'aria-labelledby': 'overview-title' },
    h('h1', { id: 'overview-title' }, 'Overview'),
    h('div', { class: 'cards' },
      card('Stored', rate(rates.stored_per_second), `events received in the last ${rates.window_seconds} s`),
      card('Dead-lettered', rate(rates.dead_lettered_per_second), `in the last ${rates.window_seconds} s`),
      card('Queue depth', String(queue.depth), `lag ${queue.lag ?? 'unknown'} · pending ${queue.pending}`),
      card('Oldest pending', age(queue.oldest_pending_age_seconds), 'read, not yet acked'),
      h('a', { class: 'card link', href: '#/dlq' }, h('h2', {}, 'DLQ depth'), h('p', { class: 'figure', id: 'dlq-depth' }, String(dlq.open)),
        h('p', { class: 'detail' }, `${dlq.pending} pending · ${dlq.retrying} retrying · ${dlq.failed} failed`))),
    h('h2', {}, 'Queue'),
    facts([['Stream', queue.stream], ['Consumer group', queue.group], ['Consumers', String(queue.consumers)], ['Figures taken', new Date(o.generated_at).toLocaleString()]]),
    h('h2', {}, 'Circuit breakers'),
    breakers.length === 0
      ? h('p', { id: 'breakers-closed' }, 'Every breaker is closed: no destination is failing.')
      : table(`${breakers.length} open or half-open breaker${breakers.length === 1 ? '' : 's'} (per destination and worker)`,
        ['Destination', 'Worker', 'State', 'Failures in a row', 'Opened', 'Next probe'],
        breakers.map((b) => [b.destination, b.worker, h('span', { class: `badge ${b.state}`, 'data-breaker': b.destination }, b.state.replace('_', '-')),
          String(b.consecutive_failures), when(b.opened_at), when(b.next_probe_at)])),
    h('p', {}, h('button', { type: 'button', onclick: () => document.dispatchEvent(new Event('console:refresh')) }, 'Refresh')))
}
