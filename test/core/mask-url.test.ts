import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { maskUrl, maskUrlsInText } from '../../src/core/mask-url.js'

const Mask = suite('maskUrl: credentials in the path')

// incoming-webhook URLs whose credential is a path segment (or a query value), as their providers issue them
const SLACK = 'https://hooks.slack.com/services/T0A1B2C3D/B0E4F5G6H/xoxbSecretTokenAbcdefGHIJ'
const DISCORD = 'https://discord.com/api/webhooks/1234567890123456789/Zq3_SecretDiscordToken-abcdefghijklmnopqrstuvwxyz0123456789'
const TEAMS = 'https://contoso.webhook.office.com/webhookb2/7aa49aa6-7840-443d-806c-08ebe8f59966@c662313f-14fc-43a2-9a7a-d2e27f4f3478/IncomingWebhook/8592f62b50cf41b9b93ba0c0a00a0b88/eff4cd58-1bb8-4899-94de-795f656b4a18'
const GCHAT = 'https://chat.googleapis.com/v1/spaces/AAAAsp4ce1d/messages?key=AIzaSyGChatKey0123&token=GChatTok3n%3D'
const ZAPIER = 'https://hooks.zapier.com/hooks/catch/1234567/ab1cd2e/'
const CAPABILITY = 'https://webhook.site/9f5c3a4e-1b2d-4c6e-8f7a-0b1c2d3e4f5a'

Mask('a provider\'s token in the path is masked; the host and the route before it stay, so destinations can be told apart', () => {
  assert.is(maskUrl(SLACK), 'https://hooks.slack.com/services/T0A1B2C3D/****/****')
  assert.is(maskUrl(DISCORD), 'https://discord.com/api/webhooks/****/****')
  assert.is(maskUrl(TEAMS), 'https://contoso.webhook.office.com/webhookb2/****/****/****/****')
  assert.is(maskUrl(GCHAT), 'https://chat.googleapis.com/v1/spaces/****/****?key=****&token=****')
  assert.is(maskUrl(ZAPIER), 'https://hooks.zapier.com/hooks/catch/****/****/')
  assert.is(maskUrl(CAPABILITY), 'https://webhook.site/****', 'a long segment is masked even among the first two')
  for (const url of [SLACK, DISCORD, TEAMS, GCHAT, ZAPIER, CAPABILITY]) {
    const secret = new URL(url).pathname.split('/').filter(Boolean).at(-1) as string
    assert.not.ok(maskUrl(url).includes(secret), `${url}: ${secret} shown`)
  }
})

Mask('short routes and database URLs are shown as before', () => {
  assert.is(maskUrl('https://ci.example.test/hooks/github'), 'https://ci.example.test/hooks/github')
  assert.is(maskUrl('https://ci.example.test/'), 'https://ci.example.test/')
  assert.is(maskUrl('postgres://app:pw@db:5432/hooks?sslmode=require'), 'postgres://app:****@db:5432/hooks?sslmode=****')
  assert.is(maskUrl('http://collector:4318/v1/traces'), 'http://collector:4318/v1/traces')
})

Mask('maskUrlsInText masks a path token in an error or log text, and leaves URLs with nothing to hide as written', () => {
  assert.is(maskUrlsInText(`forward got HTTP 404 from ${SLACK}; check it`),
    'forward got HTTP 404 from https://hooks.slack.com/services/T0A1B2C3D/****/****; check it')
  assert.is(maskUrlsInText(`POST ${DISCORD} failed`), 'POST https://discord.com/api/webhooks/****/**** failed')
  assert.is(maskUrlsInText('see https://Docs.Example.test/a/b.'), 'see https://Docs.Example.test/a/b.')
})

Mask('file and node URLs in a stack trace keep their paths: only web URLs carry tokens in the path', () => {
  const stack = 'Error: boom\n    at send (file:///srv/hookstream/dist/src/sinks/forward.js:312:11)\n    at node:internal/process/task_queues:95:5'
  assert.is(maskUrlsInText(stack), stack)
  assert.is(maskUrl('file:///srv/hookstream/dist/src/sinks/forward.js'), 'file:///srv/hookstream/dist/src/sinks/forward.js')
  assert.is(maskUrl('wss://stream.example.test/socket/v1/abcdefghijklmnopqrstu'), 'wss://stream.example.test/socket/v1/****')
})

Mask.run()
