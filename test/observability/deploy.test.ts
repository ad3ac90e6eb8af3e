import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { createMetrics } from '../../src/observability/metrics.js'
import { parseExposition, runPromtool } from './exposition.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const alertsPath = join(root, 'deploy', 'prometheus', 'alerts.yml')
const alertsTestPath = join(root, 'deploy', 'prometheus', 'alerts.test.yml')
const dashboardPath = join(root, 'deploy', 'grafana', 'hookstream-dashboard.json')

interface Panel { id: number; type: string; title: string; gridPos: { x: number; w: number }; targets?: { expr: string }[] }
const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as { uid: string; panels: Panel[] }
const dashboardExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
const alertsText = readFileSync(alertsPath, 'utf8')
const METRIC_NAME = /\b(?:webhook|process|nodejs)_[a-z0-9_]+\b/g

const Deploy = suite('deploy: Grafana dashboard and Prometheus alerts')

Deploy('alerts.yml passes `promtool check rules`', () => {
  const res = runPromtool(['check', 'rules', alertsPath])
  assert.is(res.status, 0, res.output)
  assert.match(res.output, /SUCCESS: 9 rules found/)
})

Deploy('every alert fires on its scenario and stays quiet otherwise (`promtool test rules`)', () => {
  const res = runPromtool(['test', 'rules', alertsTestPath])
  assert.is(res.status, 0, res.output)
  const tested = new Set([...readFileSync(alertsTestPath, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]))
  const rules = (parse(alertsText) as { groups: { rules: { alert: string }[] }[] }).groups.flatMap((g) => g.rules)
  for (const rule of rules) assert.ok(tested.has(rule.alert), `alert ${rule.alert} has no unit test in alerts.test.yml`)
})

Deploy('every dashboard query is valid PromQL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hookstream-dash-'))
  try {
    const rules = dashboardExprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr: expr.replaceAll('$__rate_interval', '5m') }))
    const file = join(dir, 'dashboard-rules.yml')
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }))
    const res = runPromtool(['check', 'rules', file])
    assert.is(res.status, 0, res.output)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

Deploy('the dashboard has unique panel ids, a query in every graph, and fits the 24-column grid', () => {
  assert.is(dashboard.uid, 'hookstream-overview')
  const ids = dashboard.panels.map((p) => p.id)
  assert.is(new Set(ids).size, ids.length)
  const graphs = dashboard.panels.filter((p) => p.type !== 'row')
  assert.ok(graphs.length >= 15)
  for (const p of graphs) {
    assert.ok((p.targets ?? []).length > 0, `panel "${p.title}" has no query`)
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" overflows the grid`)
  }
})

Deploy('every metric the dashboard and the alerts name exists in a live exposition of createMetrics()', async () => {
  const metrics = createMetrics()
  try {
    metrics.received('webhook.github.push', 'gh-main')
    metrics.processed('webhook.github.push', 'gh-main', 'stored', 0.01)
    metrics.retry(1, 'TIMEOUT')
    metrics.deadLettered('webhook.github.push', 'DESTINATION_4XX')
    metrics.dlqRetry('requeued')
    metrics.ingest('gh-main', 202)
    metrics.signatureFailure('gh-main')
    metrics.healthCheck('redis', 'healthy', 0.001)
    metrics.forwardAttempt('gh-main', 'success', 0.02)
    metrics.destinationState('gh-main', 'open')
    metrics.setInFlight(1)
    metrics.setQueueStats(async () => ({ depth: 1, lag: 1, oldestPendingAgeSeconds: 1, dlqDepth: 1 }))
    metrics.setDbPoolStats(() => ({ total: 2, idle: 1, waiting: 0, max: 10 }))
    const exposed = new Set([...parseExposition(await metrics.metricsText()).keys()].map((k) => k.split('{', 1)[0]))
    const referenced = new Set([...dashboardExprs.join('\n').matchAll(METRIC_NAME), ...alertsText.matchAll(METRIC_NAME)].map((m) => m[0]))
    assert.ok(referenced.size >= 20, `only ${referenced.size} metric names found; is the pattern right?`)
    const missing = [...referenced].filter((name) => !exposed.has(name))
    assert.equal(missing, [], `referenced but not exposed: ${missing.join(', ')}`)
  } finally {
    metrics.close()
  }
})

Deploy.run()
