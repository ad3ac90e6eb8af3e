// Replay (POST /admin/replays): one event from its page, or every event matching the search after a dry run and
// a confirmation; then the replay's progress, polled from GET /admin/replays/:id until it is done or failed.
import { api, ApiError } from './api.js'
import { announce, confirmStep, field, h } from './dom.js'
import { toolDestinations } from './destinations.js'

/** How often a running replay's progress is asked for (ms). */
const POLL_MS = 500

function describe(r) {
  const skipped = r.skipped ? `, ${r.skipped} skipped (dead letters never stored)` : ''
  const where = r.destination ? ` to destination ${r.destination}` : ''
  const state = r.status === 'running' ? 'running' : r.status === 'done' ? 'done' : `failed: ${r.error ?? 'no reason given'}`
  return `Replay ${r.id}${where}: ${state}. ${r.sent} of ${r.matched} event${r.matched === 1 ? '' : 's'} sent${skipped}.`
}

/**
 * Shows replay `replay` in `box` and polls it until it is done or failed (or `box` left the page); resolves the
 * last record seen. Each change is read out (the box is a live region).
 */
export async function watchReplay(replay, box) {
  const bar = h('progress', { max: Math.max(replay.matched, 1), value: replay.sent, 'aria-label': 'Replay progress' })
  const text = h('p', { id: 'replay-progress', 'data-status': replay.status }, describe(replay))
  box.replaceChildren(text, bar)
  let current = replay
  while (current.status === 'running' && box.isConnected) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    try {
      current = (await api('GET', `/admin/replays/${encodeURIComponent(current.id)}`)).replay
    } catch (err) {
      text.textContent = `Replay ${current.id}: its progress could not be read (${err.message}); it may still be running.`
      return current
    }
    text.textContent = describe(current)
    text.dataset.status = current.status
    bar.value = current.sent
  }
  if (current.status !== 'running') announce(describe(current), current.status === 'done' ? 'ok' : 'error')
  return current
}

function failure(err) {
  return err instanceof ApiError ? `${err.code}: ${err.message}` : err.message
}

/** The replay controls of one event's page: a destination choice (its tool's destinations) and a Replay button. */
export async function replayPanel(toolId, deliveryId) {
  const destinations = await toolDestinations(toolId)
  const box = h('div', { class: 'replay-progress', role: 'status', 'aria-live': 'polite' })
  const form = h('form', { class: 'replay', 'aria-label': 'Replay this event' },
    field('Replay to', 'replay_destination', { options: [['', 'every destination it went to'], ...destinations.map((d) => [d.id, `${d.id} (${d.url})`])] }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Replay')))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const button = form.querySelector('button')
    button.disabled = true
    const destination = form.elements.replay_destination.value
    try {
      const { replay } = await api('POST', '/admin/replays', { tool: toolId, delivery_id: deliveryId, ...(destination ? { destination } : {}) })
      await watchReplay(replay, box)
      // the per-destination state and attempts change as the replayed deliveries settle: the page shows a reload
      box.append(h('button', { type: 'button', class: 'secondary', onclick: () => document.dispatchEvent(new Event('console:refresh')) }, 'Reload the event'))
    } catch (err) {
      box.replaceChildren(h('p', { class: 'error' }, `Replay not started: ${failure(err)}`))
    } finally {
      button.disabled = false
    }
  })
  return h('section', { 'aria-labelledby': 'replay-title' }, h('h2', { id: 'replay-title' }, 'Replay'),
    h('p', {}, 'Sends the stored event again through delivery (retries, breakers, rate limits), marked with a webhook-replay-id header.'),
    form, box)
}

/**
 * "Replay matching…" for the search `filters` (non-empty ones): a dry run shows the count, a confirmation step
 * starts the replay (with `confirm: true` when the API asks for it), then its progress.
 */
export function replayMatching(filters) {
  const given = Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== ''))
  const box = h('div', { class: 'replay-progress', role: 'status', 'aria-live': 'polite' })
  const scope = Object.entries(given).map(([k, v]) => `${k} = ${v}`).join(', ')
  const trigger = h('button', { type: 'button', class: 'secondary', disabled: Object.keys(given).length === 0,
    title: Object.keys(given).length === 0 ? 'Search with at least one filter first' : undefined,
    onclick: async () => {
      trigger.disabled = true
      let dry
      try {
        dry = await api('POST', '/admin/replays', { ...given, dry_run: true })
      } catch (err) {
        box.replaceChildren(h('p', { class: 'error' }, `Dry run failed: ${failure(err)}`))
        trigger.disabled = false
        return
      }
      trigger.disabled = false
      if (dry.matched === 0) {
        box.replaceChildren(h('p', {}, `No stored event matches ${scope}: nothing to replay.`))
        return
      }
      const count = `${dry.matched}${dry.capped ? ' or more' : ''} event${dry.matched === 1 ? '' : 's'}`
      box.replaceChildren()
      confirmStep(trigger, `Replay ${count} matching ${scope}?${dry.needs_confirm ? ' That is over the limit for an unconfirmed replay.' : ''}`, `Replay ${count}`, async () => {
        try {
          const { replay } = await api('POST', '/admin/replays', { ...given, ...(dry.needs_confirm ? { confirm: true } : {}) })
          document.querySelector('.replay-matching .confirm')?.replaceWith(trigger)
          await watchReplay(replay, box)
        } catch (err) {
          box.replaceChildren(h('p', { class: 'error' }, `Replay not started: ${failure(err)}`))
        }
      })
    } }, 'Replay matching…')
  return h('div', { class: 'replay-matching' }, h('p', {}, trigger), box)
}
