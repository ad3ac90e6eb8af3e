const MASK = '***'

/**
 * A URL safe to show in API responses, audit rows, errors, DLQ rows and logs: the user name and password
 * become `***`, every query value becomes `***` (the names stay, so a reader sees which parameters are set),
 * and a fragment is dropped. Text that is not a URL is returned as `"<not a URL>"` (it may be a secret).
 *
 * @example
 * maskUrl('https://bot:pw@hooks.example.test/in?token=abc&v=2') // "https://***:***@hooks.example.test/in?token=***&v=***"
 */
export function maskUrl(url: string): string {
  if (!URL.canParse(url)) return '<not a URL>'
  const u = new URL(url)
  if (u.username) u.username = MASK
  if (u.password) u.password = MASK
  u.hash = ''
  if (u.search) {
    const names = [...u.searchParams.keys()]
    u.search = names.map((name) => `${encodeURIComponent(name)}=${MASK}`).join('&')
  }
  return u.toString()
}
