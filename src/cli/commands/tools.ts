import { parseDuration } from '../../core/duration.js'
import { parseTool, toolToJSON, type ToolConfig, type ToolInput } from '../../core/tool.js'
import { generateForwardSecret, retireSecret, rotateSecret } from '../../core/tool-secrets.js'
import { keepWriteOnly, withSigningSecrets } from '../../core/tool-write-only.js'
import { ToolStore } from '../../db/tool-store.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { CommandFailure, fileInput, formatFields, jsonFlag, print, stringFlag, UsageError, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream tools list | show <id> | add <id> --provider <p> --secret <s> [--secret-env VAR] [--tenant t] ' +
  '[--mode store|store_and_forward|transform_and_store] [--forward-url url] [--transform <json or jsonata>] [--transform-timeout 100ms] [--max-body 1MiB] [--retry-policy <json>] ' +
  '[--signature none|<json>] [--delivery-id <json>] [--disabled] | add --file tool.json|tool.yaml | remove <id> | ' +
  'rotate-secret <id> [--forward] [--secret <s> | --secret-env VAR] [--previous-expires-in 24h] | retire-secret <id> [--forward] | ' +
  'reencrypt   (--json for JSON output)'

const ACTOR = 'cli'

/** `raw` parsed as JSON, or `raw` itself when it is not JSON (a JSONata expression). */
function jsonOrText(raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch {
    return raw
  }
}

/** The tool described by `add`'s flags or `--file`, as user input (validated later by parseTool). */
function toolInput(id: string | undefined, flags: Parameters<Command>[1], env: Readonly<Record<string, string | undefined>>): ToolInput {
  const file = stringFlag(flags, 'file')
  if (file !== undefined) return fileInput<ToolInput>(file, 'tool', id)
  if (id === undefined) throw new UsageError(`tools add needs a tool id or --file\n${USAGE}`)
  const input: ToolInput = { id }
  const provider = stringFlag(flags, 'provider')
  if (provider !== undefined) input.provider = provider
  const secretEnv = stringFlag(flags, 'secret-env')
  const secret = secretEnv !== undefined ? env[secretEnv] : stringFlag(flags, 'secret')
  if (secretEnv !== undefined && !secret) throw new UsageError(`--secret-env ${secretEnv}: that environment variable is not set`)
  if (secret !== undefined) input.secret = secret
  const tenant = stringFlag(flags, 'tenant')
  if (tenant !== undefined) input.tenant_id = tenant
  const mode = stringFlag(flags, 'mode')
  if (mode !== undefined) input.processing_mode = mode
  const forwardUrl = stringFlag(flags, 'forward-url')
  if (forwardUrl !== undefined) input.forward_url = forwardUrl
  const transform = stringFlag(flags, 'transform')
  // JSON rules (an object of field → expression) or one JSONata expression; a JSONata object constructor such as
  // `{"ref": ref}` starts with `{` too but is no JSON, so it is taken as an expression (and compiled as one)
  if (transform !== undefined) input.transform = transform.trim().startsWith('{') ? jsonOrText(transform) : transform
  const transformTimeout = stringFlag(flags, 'transform-timeout')
  if (transformTimeout !== undefined) input.transform_timeout = transformTimeout
  const maxBody = stringFlag(flags, 'max-body')
  if (maxBody !== undefined) input.max_body = maxBody
  const retry = stringFlag(flags, 'retry-policy')
  if (retry !== undefined) input.retry_policy = jsonFlag('retry-policy', retry, '{"max_retries": 3, "initial_interval": "1s"}')
  const signature = stringFlag(flags, 'signature')
  if (signature !== undefined) input.signature = signature === 'none' ? 'none' : jsonFlag('signature', signature, '{"header": "x-signature", "encoding": "hex"}')
  const deliveryId = stringFlag(flags, 'delivery-id')
  if (deliveryId !== undefined) input.delivery_id = jsonFlag('delivery-id', deliveryId, '{"header": "x-request-id"}')
  if (flags.disabled) input.enabled = false
  return input
}

/** `rotate-secret` / `retire-secret`: the two-key rotation of a stored tool's inbound or forward secret. */
async function rotateCommand(sub: 'rotate-secret' | 'retire-secret', id: string, store: ToolStore, inConfig: boolean,
  flags: Parameters<Command>[1], io: Parameters<Command>[2]): Promise<number> {
  const kind = flags.forward === true ? 'forward' : 'inbound'
  // a locked read-modify-write: a tool read first and stored whole would undo a change stored in between
  const change = async (next: (tool: ToolConfig) => ToolConfig, action: 'tool_secret_rotated' | 'tool_secret_retired') => {
    const changed = await store.modify(id, next, ACTOR, action)
    if (!changed) {
      throw new UsageError(inConfig ? `tool "${id}" is defined in the config file; rotate its secret in the file`
        : `tool "${id}" does not exist; list tools with \`hookstream tools list\``)
    }
    return changed
  }
  if (sub === 'retire-secret') {
    const retired = await change((tool) => retireSecret(tool, kind), 'tool_secret_retired')
    print(io, flags, { tool: toolToJSON(retired) }, () => `the previous ${kind} secret of tool "${id}" is retired; running services drop it within their refresh interval`)
    return 0
  }
  const secretEnv = stringFlag(flags, 'secret-env')
  const given = secretEnv !== undefined ? io.env[secretEnv] : stringFlag(flags, 'secret')
  if (secretEnv !== undefined && !given) throw new UsageError(`--secret-env ${secretEnv}: that environment variable is not set`)
  if (kind === 'inbound' && !given) throw new UsageError(`tools rotate-secret ${id} needs the new secret: --secret-env VAR (or --secret)\n${USAGE}`)
  const expiresIn = stringFlag(flags, 'previous-expires-in')
  const ms = expiresIn === undefined ? undefined : parseDuration(expiresIn)
  if (expiresIn !== undefined && (ms === undefined || ms < 1 || Number.isNaN(new Date(Date.now() + ms).getTime()))) throw new UsageError(`--previous-expires-in must be a duration such as "24h"; got "${expiresIn}"`)
  const next = given ?? generateForwardSecret()
  const rotated = await change((tool) => rotateSecret(tool, kind, next, ms === undefined ? undefined : Date.now() + ms), 'tool_secret_rotated')
  print(io, flags, { tool: toolToJSON(rotated), ...(given ? {} : { forward_secret: next }) }, () =>
    `the ${kind} secret of tool "${id}" is rotated; the previous one stays ${ms === undefined ? 'until `tools retire-secret`' : `for ${expiresIn}`}` +
    (given ? '' : `\nnew forward signing secret (shown once; give it to the receiver): ${next}`))
  return 0
}

const row = (tool: ToolConfig, source: string) => {
  const j = toolToJSON(tool)
  return { id: j.id, provider: j.provider, tenant_id: j.tenant_id, mode: j.processing_mode, forward_url: j.forward_url, enabled: j.enabled, source }
}

/**
 * `hookstream tools list|show|add|remove`: manages the tools stored in PostgreSQL (config-file tools are
 * listed read-only). Changes are audited with actor `cli`; running services pick them up within their
 * registry refresh interval. Secrets are masked in all output.
 *
 * @example
 * hookstream tools add gh-main --provider github --secret-env GH_SECRET --tenant acme
 * hookstream tools list --json
 */
export const toolsCommand: Command = async (args, flags, io) => {
  const [sub, id, ...extra] = args
  if (!sub || !['list', 'show', 'add', 'remove', 'rotate-secret', 'retire-secret', 'reencrypt'].includes(sub) || extra.length > 0) {
    io.stderr(`hookstream tools: ${sub ? `unknown or malformed subcommand "${[sub, id, ...extra].join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  return withContext('tools', flags, io, async (ctx) => {
    const store = new ToolStore({ db: ctx.db.db, ...(ctx.config.encryptionKey ? { encryptionKey: ctx.config.encryptionKey } : {}),
      ...(ctx.config.encryptionKeyPrevious ? { encryptionKeyPrevious: ctx.config.encryptionKeyPrevious } : {}) })
    const fromConfig = new Map(ctx.config.tools.map((t) => [t.id, t]))
    if (sub === 'reencrypt') {
      const result = await store.reencrypt(ACTOR)
      print(io, flags, result, () => `${result.rewritten} of ${result.rows} stored tools re-encrypted with the current HOOKSTREAM_ENCRYPTION_KEY; ` +
        'HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS is no longer needed')
      return 0
    }
    if (sub === 'list') {
      // a row that no longer parses must not hide the others: they are listed, it is named on stderr, and the
      // exit code is 1 (a wrong HOOKSTREAM_ENCRYPTION_KEY makes every row such a row)
      let unreadable = 0
      const stored = await store.list((badId, err) => {
        unreadable++
        io.stderr(`stored tool "${badId}" cannot be read and is not listed: ${(err as Error)?.message ?? String(err)}`)
      })
      const ids = new Set(stored.map((t) => t.id))
      const all = [...stored.map((t) => ({ tool: t, source: 'store' })), ...[...fromConfig.values()].filter((t) => !ids.has(t.id)).map((t) => ({ tool: t, source: 'config' }))]
        .sort((a, b) => a.tool.id.localeCompare(b.tool.id))
      print(io, flags, all.map(({ tool, source }) => ({ ...toolToJSON(tool), source })), () => formatTable(all.map(({ tool, source }) => row(tool, source))))
      return unreadable > 0 ? 1 : 0
    }
    if (id === undefined && !(sub === 'add' && flags.file)) throw new UsageError(`tools ${sub} needs a tool id\n${USAGE}`)
    if (sub === 'show') {
      const stored = await store.get(id as string)
      const tool = stored ?? fromConfig.get(id as string)
      if (!tool) throw new CommandFailure(`tool "${id}" does not exist; list tools with \`hookstream tools list\``)
      const shown = { ...toolToJSON(tool), source: stored ? 'store' : 'config' }
      print(io, flags, shown, () => formatFields(shown))
      return 0
    }
    if (sub === 'remove') {
      if (!(await store.remove(id as string, ACTOR))) {
        throw new CommandFailure(fromConfig.has(id as string)
          ? `tool "${id}" is defined in the config file, not stored; remove it from the file's tools list`
          : `tool "${id}" does not exist; list tools with \`hookstream tools list\``)
      }
      print(io, flags, { removed: id }, () => `tool "${id}" removed; running services drop it within their refresh interval`)
      return 0
    }
    if (sub === 'rotate-secret' || sub === 'retire-secret') return rotateCommand(sub, id as string, store, fromConfig.has(id as string), flags, io)
    const input = toolInput(id, flags, io.env)
    // secrets are write-only: re-adding a tool without one keeps the stored secret (read under the row lock, so a
    // change in between is not undone); a forward destination without a signing secret gets one, printed this once
    const build = (existing: ToolConfig | undefined) => withSigningSecrets(parseTool(keepWriteOnly(input, existing), 'tools add'), existing)
    // an id that is not a string finds no row, and parseTool refuses it naming the field
    const { tool, generated, destinationSecrets, created } = await store.replace(typeof input.id === 'string' ? input.id : '', build, ACTOR)
    print(io, flags, { tool: toolToJSON(tool), created, forward_secret: generated, destination_secrets: destinationSecrets }, () =>
      `tool "${tool.id}" ${created ? 'created' : 'replaced'}; running services pick it up within their refresh interval\n${formatFields(toolToJSON(tool))}` +
      (generated ? `\nforward signing secret (shown once; give it to the receiver): ${generated}` : '') +
      Object.entries(destinationSecrets ?? {}).map(([id, secret]) => `\ndestination "${id}" signing secret (shown once; give it to its receiver): ${secret}`).join(''))
    return 0
  })
}

/** `hookstream tools` as registered in the CLI. */
export const toolsSpec: CommandSpec = {
  summary: 'manage tools: list, show, add, remove, rotate-secret, retire-secret, reencrypt (secrets are write-only)',
  usage: USAGE,
  flags: {
    ...JSON_FLAG,
    provider: { type: 'string', description: 'add: github, gitlab, jira, bitbucket, standard or generic' },
    secret: { type: 'string', description: 'add, rotate-secret: the signing secret (prefer --secret-env: a flag shows in ps and shell history)' },
    'secret-env': { type: 'string', description: 'add, rotate-secret: the environment variable holding the signing secret' },
    forward: { type: 'boolean', description: 'rotate-secret, retire-secret: the forward signing secret instead of the inbound one' },
    'previous-expires-in': { type: 'string', description: 'rotate-secret: how long the previous secret stays valid, e.g. 24h' },
    tenant: { type: 'string', description: 'add: tenant id' },
    mode: { type: 'string', description: 'add: store, store_and_forward or transform_and_store' },
    'forward-url': { type: 'string', description: 'add: destination of store_and_forward' },
    transform: { type: 'string', description: 'add: JSONata expression, or JSON rules' },
    'transform-timeout': { type: 'string', description: 'add: time budget of the transform per event, e.g. 100ms (1ms–10s)' },
    'max-body': { type: 'string', description: 'add: largest request body the tool accepts, e.g. 1MiB (1KiB–1GiB; INGEST_MAX_BODY still caps it)' },
    'retry-policy': { type: 'string', description: 'add: JSON retry policy' },
    signature: { type: 'string', description: 'add: none, or a JSON signature scheme' },
    'delivery-id': { type: 'string', description: 'add (generic tools): where the delivery id is, as JSON: {"header":"x-id"} or {"pointer":"/id"}' },
    disabled: { type: 'boolean', description: 'add: store the tool disabled' },
    file: { type: 'string', description: 'add: read the tool from a JSON or YAML file' },
  },
  run: toolsCommand,
}
