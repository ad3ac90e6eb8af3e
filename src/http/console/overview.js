// Overview: the queue, the DLQ and recent rates from GET /admin/overview.
import { api } from './api.js'
import { facts, h } from './dom.js'

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
  const o = await api('GET', '/admin/overview')
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
    h('h2', {}, 'Destinations and breakers'),
    h('p', { class: 'placeholder' }, 'No destinations data: this hookstream does not report per-destination breaker states yet.'),
    h('p', {}, h('button', { type: 'button', onclick: () => document.dispatchEvent(new Event('console:refresh')) }, 'Refresh')))
}
