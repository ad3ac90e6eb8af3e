import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { loadConfig } from '../../src/config/load-config.js'
import { createMetrics } from '../../src/observability/metrics.js'
import { configFromEnv, healthyServer, readText, readYaml, readYamlDocuments, ROOT } from './manifest-helpers.js'

const DIR = 'deploy/kubernetes'
const deployment = readYaml(`${DIR}/deployment.yaml`)
const service = readYaml(`${DIR}/service.yaml`)
const configMap = readYaml(`${DIR}/configmap.yaml`)
const secret = readYaml(`${DIR}/secret.example.yaml`)
const hpa = readYaml(`${DIR}/hpa.yaml`)
const pod = deployment.spec.template.spec
const container = pod.containers[0]
const defaults = loadConfig({ env: {} })
const POD_NAME = 'hookstream-7c9d8f6b5-x2k4p'

interface EnvVar { name: string; value?: string; valueFrom?: any }

/** The container's environment as the kubelet would resolve it, with the example Secret's values. */
function podEnv(): Record<string, string> {
  const env: Record<string, string> = {}
  for (const v of container.env as EnvVar[]) {
    if (v.value !== undefined) env[v.name] = v.value
    else if (v.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[v.name] = POD_NAME
    else if (v.valueFrom?.secretKeyRef) env[v.name] = secret.stringData[v.valueFrom.secretKeyRef.key]
    else throw new Error(`${DIR}/deployment.yaml: env ${v.name} has a source this test does not resolve`)
  }
  return env
}

/** What hookstream makes of the pod's environment and the ConfigMap's file. */
function podConfig() {
  return configFromEnv(podEnv(), configMap.data['hookstream.yaml'])
}

/** A container port number by name or number. */
function containerPort(port: string | number): number {
  if (typeof port === 'number') return port
  const found = container.ports.find((p: { name: string }) => p.name === port)
  assert.ok(found, `container port named ${port}`)
  return found.containerPort
}

const Kubernetes = suite('deploy/kubernetes')

Kubernetes('every file is valid YAML and the kustomization lists files that exist', () => {
  for (const file of ['deployment.yaml', 'service.yaml', 'configmap.yaml', 'secret.example.yaml', 'hpa.yaml', 'pdb.yaml', 'kustomization.yaml']) {
    const docs = readYamlDocuments(`${DIR}/${file}`)
    assert.is(docs.length, 1, `${file} holds one document`)
  }
  const kustomization = readYaml(`${DIR}/kustomization.yaml`)
  for (const resource of kustomization.resources as string[]) assert.ok(existsSync(join(ROOT, DIR, resource)), `${resource} exists`)
  assert.not.ok((kustomization.resources as string[]).includes('secret.example.yaml'), 'the placeholder Secret is never applied by kustomize')
})

Kubernetes('the Deployment runs 3 replicas with requests 256Mi/250m and limits 512Mi/1 CPU', () => {
  assert.is(deployment.spec.replicas, 3)
  assert.equal(container.resources, { requests: { memory: '256Mi', cpu: '250m' }, limits: { memory: '512Mi', cpu: '1' } })
  assert.equal(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels)
  assert.ok(pod.securityContext.runAsNonRoot, 'runAsNonRoot')
})

Kubernetes('every pod variable is one the config reads, and the config is valid', () => {
  const { read, config } = podConfig()
  const unread = Object.keys(podEnv()).filter((name) => !read.has(name))
  assert.equal(unread, [], `variables loadConfig never reads: ${unread.join(', ')}`)
  assert.is(config.redis.kind, 'server')
  assert.is(config.database.kind, 'postgres')
  assert.is(config.tools.length, 1)
})

Kubernetes('WORKER_CONSUMER_NAME comes from the pod name through the downward API', () => {
  const v = (container.env as EnvVar[]).find((e) => e.name === 'WORKER_CONSUMER_NAME')
  assert.equal(v?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } })
  assert.is(podConfig().config.worker.consumerName, POD_NAME)
})

Kubernetes('liveness and readiness probe /health/live and /health/ready on the port the config resolves to', () => {
  const { config } = podConfig()
  assert.is(config.health.endpoint.port, defaults.health.endpoint.port)
  assert.is(config.http.addr.port, defaults.http.addr.port)
  const probes = { startupProbe: '/health/live', livenessProbe: '/health/live', readinessProbe: '/health/ready' }
  for (const [probe, path] of Object.entries(probes)) {
    assert.is(container[probe].httpGet.path, path, `${probe} path`)
    assert.is(containerPort(container[probe].httpGet.port), config.health.endpoint.port, `${probe} port`)
  }
  assert.is(containerPort('http'), config.http.addr.port)
  assert.is(deployment.spec.template.metadata.annotations['prometheus.io/port'], String(config.health.endpoint.port))
})

Kubernetes('the probe paths are ones the health server answers with 200', async () => {
  const { server, close } = await healthyServer()
  try {
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const res = await fetch(`${server.url}${container[probe].httpGet.path}`)
      await res.arrayBuffer()
      assert.is(res.status, 200, `${probe} ${container[probe].httpGet.path}`)
    }
  } finally {
    await close()
  }
})

Kubernetes('terminationGracePeriodSeconds outlasts preStop plus the drain timeout', () => {
  const { config } = podConfig()
  const preStop = container.lifecycle?.preStop?.exec?.command as string[] | undefined
  const preStopSeconds = preStop?.[0] === 'sleep' ? Number(preStop[1]) : 0
  assert.ok(pod.terminationGracePeriodSeconds > preStopSeconds + config.worker.shutdownTimeoutMs / 1000,
    `grace ${pod.terminationGracePeriodSeconds} s vs preStop ${preStopSeconds} s + drain ${config.worker.shutdownTimeoutMs} ms`)
})

Kubernetes('the Service sends 8080 to ingest and 8088 to health/metrics of the selected pods', () => {
  const { config } = podConfig()
  assert.equal(service.spec.selector, deployment.spec.template.metadata.labels)
  const ports = Object.fromEntries(service.spec.ports.map((p: any) => [p.name, [p.port, containerPort(p.targetPort)]]))
  assert.equal(ports, { http: [config.http.addr.port, config.http.addr.port], metrics: [config.health.endpoint.port, config.health.endpoint.port] })
})

Kubernetes('the pod refers only to Secret keys and ConfigMaps the examples define, and the Secret holds placeholders', () => {
  const refs = (container.env as EnvVar[]).flatMap((e) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef] : []))
  assert.ok(refs.length > 0)
  for (const ref of refs) {
    assert.is(ref.name, secret.metadata.name)
    assert.ok(ref.key in secret.stringData, `the example Secret has ${ref.key}`)
  }
  const volume = pod.volumes.find((v: any) => v.configMap)
  assert.is(volume.configMap.name, configMap.metadata.name)
  const mount = container.volumeMounts.find((m: any) => m.name === volume.name)
  assert.is(`${mount.mountPath}/hookstream.yaml`, podEnv().HOOKSTREAM_CONFIG)
  for (const [key, value] of Object.entries(secret.stringData as Record<string, string>)) assert.match(value, /CHANGE-ME/, `${key} is a placeholder`)
  assert.match(readText(`${DIR}/secret.example.yaml`), /EXAMPLE ONLY/)
})

Kubernetes('the HPA scales the Deployment on webhook_consumer_lag, a metric hookstream exports', () => {
  assert.equal(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name })
  assert.ok(hpa.spec.minReplicas >= deployment.spec.replicas, 'the HPA does not scale below the Deployment replicas')
  const names = hpa.spec.metrics.map((m: any) => m.external?.metric?.name)
  assert.equal(names, ['webhook_consumer_lag'])
  const metrics = createMetrics({ defaultMetrics: false })
  try {
    assert.ok(metrics.registry.getSingleMetric('webhook_consumer_lag'), 'hookstream registers webhook_consumer_lag')
  } finally {
    metrics.close()
  }
  assert.match(readText(`${DIR}/README.md`), /webhook_consumer_lag/)
})

Kubernetes.run()
