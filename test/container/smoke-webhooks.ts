/**
 * Sends signed GitHub push webhooks for smoke.sh: `count` deliveries, `concurrency` at a time, to `url`, signed
 * with $SMOKE_SECRET (X-Hub-Signature-256: sha256=HMAC-SHA256 of the raw body). Appends the delivery id of each
 * accepted (2xx) request to `acceptedFile` as soon as it is answered, so the caller can act mid-burst; a refused
 * request (the service is shutting down) is not an error. Prints `<accepted> accepted, <other> not` at the end,
 * or, for a single delivery, its status and body.
 *
 * @example
 * SMOKE_SECRET=… node --import tsx test/container/smoke-webhooks.ts http://127.0.0.1:8080/webhooks/gh accepted.txt 200 20
 */
import { createHmac, randomUUID } from 'node:crypto'
import { appendFileSync } from 'node:fs'

const [url, acceptedFile, countArg = '1', concurrencyArg = '1'] = process.argv.slice(2)
const secret = process.env.SMOKE_SECRET
if (!url || !acceptedFile || !secret) {
  console.error('usage: SMOKE_SECRET=<secret> smoke-webhooks.ts <url> <accepted-file> [count] [concurrency]')
  process.exit(2)
}
const count = Number(countArg)
const concurrency = Number(concurrencyArg)

async function send(n: number): Promise<{ status: number; body: string }> {
  const delivery = randomUUID()
  const body = JSON.stringify({
    ref: 'refs/heads/main', after: n.toString(16).padStart(40, '0'), commits: [], pusher: { name: 'smoke' },
    repository: { id: 1, name: 'smoke', full_name: 'hookstream/smoke' },
  })
  try {
    const res = await fetch(url as string, {
      method: 'POST', body, signal: AbortSignal.timeout(10_000),
      headers: {
        'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery,
        'x-hub-signature-256': `sha256=${createHmac('sha256', secret as string).update(body).digest('hex')}`,
      },
    })
    const text = await res.text()
    if (res.ok) appendFileSync(acceptedFile as string, `${delivery}\n`)
    return { status: res.status, body: text.slice(0, 200) }
  } catch (err) {
    return { status: 0, body: (err as Error).message }
  }
}

if (count === 1) {
  const { status, body } = await send(0)
  console.log(`${status} ${body}`)
} else {
  let next = 0
  let accepted = 0
  let other = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const { status } = await send(next++)
      if (status >= 200 && status < 300) accepted++
      else other++
    }
  }))
  console.log(`${accepted} accepted, ${other} not`)
}
