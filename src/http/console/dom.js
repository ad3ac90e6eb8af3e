// Builds DOM nodes from data without ever parsing it as HTML, so nothing an event carries can run as script.

/**
 * An element: h('a', { href: '#/x', class: 'btn' }, 'text', child). Attributes starting with "on" take a
 * listener; `null`/`undefined`/`false` children and attributes are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value)
    else if (value === true) el.setAttribute(name, '')
    else el.setAttribute(name, String(value))
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue
    el.append(child instanceof Node ? child : String(child))
  }
  return el
}

/** A table with a caption, header cells and rows of cells (strings or nodes). */
export function table(caption, headers, rows) {
  return h('div', { class: 'scroll' }, h('table', {},
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, rows.length === 0
      ? h('tr', {}, h('td', { colspan: headers.length }, 'Nothing to show.'))
      : rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))))
}

/** A labelled form field: text input by default, or `select` with `options` ([value, label] pairs). */
export function field(label, name, { type = 'text', value = '', options, required, hint, autocomplete } = {}) {
  const id = `f-${name}`
  const control = options
    ? h('select', { id, name }, options.map(([v, text]) => h('option', { value: v, selected: v === value }, text)))
    : type === 'textarea'
      ? h('textarea', { id, name, rows: 6, spellcheck: 'false', 'aria-describedby': hint ? `${id}-hint` : undefined }, value)
      : type === 'checkbox'
        ? h('input', { id, name, type, checked: value === true })
        : h('input', { id, name, type, value, required, autocomplete: autocomplete ?? 'off', 'aria-describedby': hint ? `${id}-hint` : undefined })
  return h('div', { class: type === 'checkbox' ? 'field check' : 'field' },
    h('label', { for: id }, label), control, hint ? h('small', { id: `${id}-hint` }, hint) : null)
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value ?? '—')]))
}

/** Pretty JSON in a focusable, scrollable block. */
export function json(value, label) {
  return h('pre', { class: 'json', tabindex: 0, 'aria-label': label }, JSON.stringify(value, null, 2))
}

/** A short local time for an ISO timestamp; "—" for none. */
export function when(iso) {
  return iso ? h('time', { datetime: iso }, new Date(iso).toLocaleString()) : '—'
}

let announced

/** Says something to every user, screen readers included; it fades after 10 s. */
export function announce(text, kind = 'info') {
  const box = document.getElementById('status')
  box.className = `status ${kind}`
  box.textContent = text
  clearTimeout(announced)
  announced = setTimeout(() => { box.textContent = '' }, 10_000)
}

/** A link to one event's page. */
export function eventLink(toolId, deliveryId, text = deliveryId) {
  return h('a', { href: `#/events/${encodeURIComponent(toolId)}/${encodeURIComponent(deliveryId)}` }, text)
}

/**
 * Replaces `trigger` with a question and two buttons; `action` runs only on "Confirm". Focus moves to the
 * question's first button, and back to the trigger on "Cancel".
 */
export function confirmStep(trigger, question, confirmLabel, action) {
  const box = h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm' }, h('p', {}, question))
  const yes = h('button', { type: 'button', class: 'danger', onclick: async () => { yes.disabled = true; await action() } }, confirmLabel)
  const no = h('button', { type: 'button', class: 'secondary', onclick: () => { box.replaceWith(trigger); trigger.focus() } }, 'Cancel')
  box.append(yes, ' ', no)
  trigger.replaceWith(box)
  yes.focus()
}
