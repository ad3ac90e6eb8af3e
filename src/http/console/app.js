// The console's shell: the login form, the hash router (#/page/…) and the navigation.
import { api, ApiError, clearToken, setToken, token } from './api.js'
import { announce, field, h } from './dom.js'
import { overviewPage } from './overview.js'
import { eventPage, eventsPage } from './events.js'
import { dlqPage } from './dlq.js'
import { toolEditPage, toolsPage } from './tools.js'

const main = document.getElementById('main')
const nav = document.getElementById('nav')
const logout = document.getElementById('logout')

/** The route of a hash: its path segments (decoded) and its query. */
function parseHash() {
  const [path, search = ''] = location.hash.replace(/^#\/?/, '').split('?')
  return { segments: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(search) }
}

function pageFor({ segments: [page = 'overview', ...rest], params }) {
  switch (page) {
    case 'events': return rest.length === 2 ? eventPage(rest[0], rest[1]) : eventsPage(params)
    case 'dlq': return dlqPage(params)
    case 'tools': return rest.length === 1 ? toolEditPage(rest[0] === 'new' ? null : rest[0]) : toolsPage()
    default: return overviewPage()
  }
}

function loginForm(message) {
  nav.hidden = true
  logout.hidden = true
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Log in to the hookstream console'),
    h('p', {}, 'Enter the admin token (ADMIN_TOKEN). It is kept in this tab only and sent to the admin API as a header.'),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
    field('Admin token', 'token', { type: 'password', required: true, autocomplete: 'current-password' }),
    h('button', { type: 'submit' }, 'Log in'))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    setToken(form.elements.token.value.trim())
    form.elements.token.value = ''
    try {
      await api('GET', '/admin/overview')
      render()
    } catch (err) {
      // past the token check (a 503 from a database that is down), the token is right: keep it, show the error page
      if (err instanceof ApiError && err.status !== 401 && err.status !== 429) return render()
      clearToken()
      main.replaceChildren(loginForm(err instanceof ApiError && err.status === 401 ? 'That token was not accepted.' : err.message))
      main.querySelector('input').focus()
    }
  })
  return form
}

let rendering = 0
// focus moves to the new page after a navigation, not on the first load (the skip link stays the first stop)
let navigated = false

/** Draws the page of the current hash, or the login form without a token. */
async function render() {
  const mine = ++rendering
  if (!token()) {
    main.replaceChildren(loginForm())
    main.querySelector('input').focus()
    return
  }
  nav.hidden = false
  logout.hidden = false
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'))
  try {
    // a hand-typed address may not be valid percent-encoding: that is this page's error, not a stale page
    const route = parseHash()
    for (const link of nav.querySelectorAll('a')) {
      if (link.getAttribute('href') === `#/${route.segments[0] ?? 'overview'}`) link.setAttribute('aria-current', 'page')
      else link.removeAttribute('aria-current')
    }
    const page = await pageFor(route)
    if (mine !== rendering) return
    main.replaceChildren(page)
    const title = main.querySelector('h1')
    document.title = `${title ? title.textContent : 'Console'} · hookstream`
    if (navigated) main.focus()
  } catch (err) {
    if (mine !== rendering) return
    if (err instanceof ApiError && err.status === 401) {
      clearToken()
      main.replaceChildren(loginForm('The admin token is no longer accepted; log in again.'))
      return
    }
    main.replaceChildren(h('section', {}, h('h1', {}, 'Something went wrong'),
      h('p', { class: 'error', role: 'alert' }, err instanceof ApiError ? `${err.code}: ${err.message}` : String(err.message ?? err))))
  }
}

logout.addEventListener('click', () => {
  clearToken()
  announce('Logged out.')
  render()
})
window.addEventListener('hashchange', () => {
  navigated = true
  render()
})
document.addEventListener('console:refresh', render)
render()
