// Tools: list, create, edit, enable/disable over /admin/tools. Secrets are write-only: never shown, only set.
import { api, ApiError } from './api.js'
import { announce, facts, field, h, table } from './dom.js'
import { destinationsSection } from './destinations.js'

const PROVIDERS = ['github', 'gitlab', 'bitbucket', 'jira', 'standard', 'generic']
const MODES = ['store', 'store_and_forward', 'transform_and_store']

/** PUTs `tool` back with `enabled` flipped: a GET → edit → PUT round trip keeps every secret (they travel masked). */
async function toggle(id, button) {
  button.disabled = true
  try {
    const { tool } = await api('GET', `/admin/tools/${encodeURIComponent(id)}`)
    await api('PUT', `/admin/tools/${encodeURIComponent(id)}`, { ...tool, enabled: !tool.enabled })
    announce(`Tool ${id} ${tool.enabled ? 'disabled' : 'enabled'}.`, 'ok')
    document.dispatchEvent(new Event('console:refresh'))
  } catch (err) {
    announce(`Could not change tool ${id}: ${err.message}`, 'error')
    button.disabled = false
  }
}

/** The tools page: every tool, where it is defined, and its actions (config-file tools are read-only). */
export async function toolsPage() {
  const { tools } = await api('GET', '/admin/tools')
  const rows = tools.map((t) => [
    h('a', { href: `#/tools/${encodeURIComponent(t.id)}` }, t.id), t.provider, t.tenant_id, t.processing_mode,
    h('span', { class: `badge ${t.enabled ? 'stored' : 'failed'}` }, t.enabled ? 'enabled' : 'disabled'), t.source,
    t.source === 'store'
      ? h('button', { type: 'button', class: 'secondary', 'aria-label': `${t.enabled ? 'Disable' : 'Enable'} tool ${t.id}`, onclick: (e) => toggle(t.id, e.currentTarget) }, t.enabled ? 'Disable' : 'Enable')
      : 'read-only (config file)'])
  return h('section', { 'aria-labelledby': 'tools-title' },
    h('h1', { id: 'tools-title' }, 'Tools'),
    h('p', {}, h('a', { class: 'btn', href: '#/tools/new' }, 'New tool')),
    table(`${tools.length} tool${tools.length === 1 ? '' : 's'}`, ['Id', 'Provider', 'Tenant', 'Mode', 'State', 'Defined in', 'Actions'], rows))
}

/** The form of one tool (`id` null: a new one), and its destinations. Blank secret fields keep the stored secrets. */
export async function toolEditPage(id) {
  let tool = null
  if (id !== null) tool = (await api('GET', `/admin/tools/${encodeURIComponent(id)}`)).tool
  const readOnly = tool?.source === 'config'
  // a transform may be an object of field → JSONata (set through the API, the CLI or the file): shown, kept as it is
  const transformObject = tool?.transform !== null && typeof tool?.transform === 'object'
  const title = tool ? `Tool ${tool.id}` : 'New tool'
  const form = h('form', { class: 'tool-form', 'aria-labelledby': 'tool-title' },
    tool ? null : field('Id', 'id', { required: true, hint: 'letters, digits, dot, dash, underscore; up to 128' }),
    field('Provider', 'provider', { value: tool?.provider ?? 'github', options: PROVIDERS.map((p) => [p, p]) }),
    field('Tenant', 'tenant_id', { value: tool?.tenant_id ?? '' }),
    field('Processing mode', 'processing_mode', { value: tool?.processing_mode ?? 'store', options: MODES.map((m) => [m, m.replaceAll('_', ' ')]) }),
    field('Forward URL', 'forward_url', { type: 'url', value: tool?.forward_url ?? '', hint: 'store_and_forward only; credentials in it are shown masked and kept' }),
    field('Transform (JSONata)', 'transform', { type: 'textarea', value: transformObject ? JSON.stringify(tool.transform, null, 2) : tool?.transform ?? '',
      hint: transformObject ? 'an object of field → JSONata: kept as it is; change it through the admin API or the CLI' : undefined }),
    field('Enabled', 'enabled', { type: 'checkbox', value: tool ? tool.enabled : true }),
    field(tool ? 'New signing secret' : 'Signing secret', 'secret', { type: 'password', autocomplete: 'new-password', required: !tool,
      hint: tool ? 'write-only: leave blank to keep the current secret; it is never shown' : 'write-only: it is never shown again' }),
    readOnly ? h('p', { class: 'placeholder' }, 'This tool is defined in the config file: change it there.') : h('div', { class: 'actions' },
      h('button', { type: 'submit' }, tool ? 'Save' : 'Create'), h('a', { class: 'btn secondary', href: '#/tools' }, 'Cancel')))
  if (readOnly) for (const control of form.elements) control.disabled = true
  if (transformObject) form.elements.transform.readOnly = true
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const data = new FormData(form)
    const toolId = tool ? tool.id : String(data.get('id')).trim()
    const body = {
      ...(tool ?? {}),
      provider: data.get('provider'), processing_mode: data.get('processing_mode'), enabled: form.elements.enabled.checked,
      forward_url: String(data.get('forward_url')).trim() || null,
      transform: transformObject ? tool.transform : String(data.get('transform')).trim() || null,
    }
    const tenant = String(data.get('tenant_id')).trim()
    if (tenant) body.tenant_id = tenant
    else delete body.tenant_id
    const secret = String(data.get('secret'))
    if (secret) body.secret = secret
    form.elements.secret.value = ''
    try {
      const answer = await api('PUT', `/admin/tools/${encodeURIComponent(toolId)}`, body)
      announce(`Tool ${toolId} ${answer.created ? 'created' : 'saved'}.`, 'ok')
      if (answer.forward_secret) {
        // generated by the server for a new forward URL: this answer is the only time it exists outside the store
        form.replaceWith(h('div', { class: 'notice', role: 'alert' },
          h('p', {}, 'A forward signing secret was generated. Give it to the receiver now: it will not be shown again.'),
          h('code', { class: 'once' }, answer.forward_secret), h('p', {}, h('a', { href: '#/tools' }, 'Back to tools'))))
        return
      }
      location.hash = '#/tools'
    } catch (err) {
      announce(err instanceof ApiError ? `${err.code}: ${err.message}` : err.message, 'error')
    }
  })
  return h('section', {},
    h('p', {}, h('a', { href: '#/tools' }, '← Tools')),
    h('h1', { id: 'tool-title' }, title),
    tool ? facts([['Defined in', tool.source], ['Signing secret', tool.secret ? 'set (write-only)' : 'none']]) : null,
    form,
    tool ? await destinationsSection(tool) : null)
}
