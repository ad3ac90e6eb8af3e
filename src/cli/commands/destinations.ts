import { DEFAULT_DESTINATION_ID, destinationToInput, destinationToJSON, parseDestination, type Destination, type DestinationInput } from '../../core/destination.js'
import { addDestination, removeDestination, retireDestinationSecret, rotateDestinationSecret, updateDestination } from '../../core/destination-changes.js'
import { parseDuration } from '../../core/duration.js'
import { destinationsOf } from '../../core/tool.js'
import { generateForwardSecret } from '../../core/tool-secrets.js'
import { ToolStore } from '../../db/tool-store.js'
import { formatTable, JSON_FLAG, type Command, type CommandSpec } from '../command.js'
import { CommandFailure, fileInput, formatFields, jsonFlag, print, stringFlag, UsageError, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream destinations list <tool> | show <tool> <destination> | ' +
  'add <tool> <destination> --url <url> [--event-types a,b*] [--filter <jsonata>] [--transform <jsonata>] [--headers-env VAR | --headers <json>] ' +
  '[--timeout 5s] [--retry-policy <json>] [--rate-limit <json>] [--max-concurrency n] [--auto-disable-after 5d] [--secret-env VAR] [--disabled] | add <tool> --file d.yaml | ' +
  'remove <tool> <destination> | enable <tool> <destination> | disable <tool> <destination> | ' +
  'rotate-secret <tool> <destination> [--secret-env VAR] [--previous-expires-in 24h] | retire-secret <tool> <destination>   (--json for JSON output)'

const ACTOR = 'cli'
// what each change did, for the confirmation line
const DONE: Readonly<Record<string, string>> = {
  add: 'added', remove: 'removed', enable: 'enabled', disable: 'disabled',
  'rotate-secret': 'has a new signing secret (the previous one keeps signing until it expires or is retired)', 'retire-secret': 'no longer signs with its previous secret',
}
const SUBCOMMANDS = ['list', 'show', 'add', 'remove', 'enable', 'disable', 'rotate-secret', 'retire-secret']

/** The destination described by `add`'s flags or `--file`, as user input (validated later by parseDestination). */
function destinationInput(id: string | undefined, flags: Parameters<Command>[1], env: Readonly<Record<string, string | undefined>>): DestinationInput {
  const file = stringFlag(flags, 'file')
  if (file !== undefined) return fileInput<DestinationInput>(file, 'destination', id)
  if (id === undefined) throw new UsageError(`destinations add needs a destination id or --file\n${USAGE}`)
  const input: DestinationInput = { id }
  const text = (name: string) => stringFlag(flags, name)
  const url = text('url')
  if (url !== undefined) input.url = url
  const types = text('event-types')
  if (types !== undefined) input.event_types = types.split(',').map((t) => t.trim()).filter((t) => t !== '')
  for (const [flag, field] of [['filter', 'filter'], ['transform', 'transform'], ['timeout', 'timeout'], ['auto-disable-after', 'auto_disable_after']] as const) {
    const value = text(flag)
    if (value !== undefined) input[field] = value
  }
  for (const [flag, field, example] of [['retry-policy', 'retry_policy', '{"max_retries": 8, "initial_interval": "2s"}'],
    ['rate-limit', 'rate_limit', '{"per_second": 50, "burst": 10}']] as const) {
    const value = text(flag)
    if (value !== undefined) input[field] = jsonFlag(flag, value, example)
  }
  const headersEnv = text('headers-env')
  const headers = headersEnv !== undefined ? env[headersEnv] : text('headers')
  if (headersEnv !== undefined && !headers) throw new UsageError(`--headers-env ${headersEnv}: that environment variable is not set`)
  if (headers !== undefined) input.headers = jsonFlag(headersEnv !== undefined ? 'headers-env' : 'headers', headers, '{"x-team": "payments"}', true)
  const concurrency = text('max-concurrency')
  if (concurrency !== undefined) input.max_concurrency = /^\d+$/.test(concurrency) ? Number(concurrency) : concurrency
  const secretEnv = text('secret-env')
  if (secretEnv !== undefined) {
    if (!env[secretEnv]) throw new UsageError(`--secret-env ${secretEnv}: that environment variable is not set`)
    input.secret = env[secretEnv]
  }
  if (flags.disabled) input.enabled = false
  return input
}

const row = (d: Destination) => {
  const j = destinationToJSON(d)
  return { id: j.id, url: j.url, enabled: j.enabled, event_types: d.eventTypes.join(',') || '*', filter: d.filter !== undefined, transform: d.transform !== undefined }
}

/**
 * `hookstream destinations list|show|add|remove|enable|disable`: manages the destinations of tools stored in
 * PostgreSQL, validated by the same parser as YAML and the admin API; config-file tools are listed read-only and
 * a tool's `forward_url` shows as destination `default`. Changes are audited with actor `cli`; running services
 * pick them up within their registry refresh interval. Secrets and header values are never printed, except a
 * generated signing secret, once, on `add`.
 *
 * @example
 * hookstream destinations add gh-main ci --url https://ci.example.com/hooks --event-types 'webhook.github.push' --filter 'ref = "refs/heads/main"'
 * hookstream destinations disable gh-main ci
 */
export const destinationsCommand: Command = async (args, flags, io) => {
  const [sub, toolId, id, ...extra] = args
  const needsId = sub !== 'list' && !(sub === 'add' && flags.file)
  if (!sub || !SUBCOMMANDS.includes(sub) || !toolId || (needsId && !id) || (sub === 'list' && id !== undefined) || extra.length > 0) {
    io.stderr(`hookstream destinations: ${sub ? `unknown or malformed subcommand "${args.join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 2
  }
  return withContext('destinations', flags, io, async (ctx) => {
    const store = new ToolStore({ db: ctx.db.db, ...(ctx.config.encryptionKey ? { encryptionKey: ctx.config.encryptionKey } : {}),
      ...(ctx.config.encryptionKeyPrevious ? { encryptionKeyPrevious: ctx.config.encryptionKeyPrevious } : {}) })
    const fromConfig = ctx.config.tools.find((t) => t.id === toolId)
    const stored = await store.get(toolId)
    const tool = stored ?? fromConfig
    if (!tool) throw new CommandFailure(`tool "${toolId}" does not exist; list tools with \`hookstream tools list\``)
    const where = `tool "${toolId}"`
    if (sub === 'list') {
      const all = destinationsOf(tool)
      print(io, flags, all.map(destinationToJSON), () => formatTable(all.map(row)))
      return 0
    }
    if (sub === 'show') {
      const d = destinationsOf(tool).find((x) => x.id === id)
      if (!d) throw new CommandFailure(`${where} has no destination "${id}"; list them with \`hookstream destinations list ${toolId}\``)
      print(io, flags, destinationToJSON(d), () => formatFields(destinationToJSON(d)))
      return 0
    }
    if (!stored) throw new CommandFailure(`${where} is defined in the config file; change its destinations in the file`)
    let generated: string | undefined
    let destination: Destination
    if (sub === 'add') {
      const input = destinationInput(id, flags, io.env)
      if (input.secret === undefined) input.secret = generated = generateForwardSecret()
      destination = parseDestination(input, where)
    }
    let rotation: ((d: Destination) => Destination) | undefined
    if (sub === 'rotate-secret') {
      const secretEnv = stringFlag(flags, 'secret-env')
      if (secretEnv !== undefined && !io.env[secretEnv]) throw new UsageError(`--secret-env ${secretEnv}: that environment variable is not set`)
      const expiresIn = stringFlag(flags, 'previous-expires-in')
      const ms = expiresIn === undefined ? undefined : parseDuration(expiresIn)
      if (expiresIn !== undefined && (ms === undefined || ms < 1 || Number.isNaN(new Date(Date.now() + ms).getTime()))) throw new UsageError(`--previous-expires-in must be a duration such as "24h"; got "${expiresIn}"`)
      const next = secretEnv !== undefined ? io.env[secretEnv] as string : (generated = generateForwardSecret())
      rotation = (d) => parseDestination(destinationToInput(rotateDestinationSecret(d, next, ms === undefined ? undefined : Date.now() + ms)), where)
    }
    if (sub === 'retire-secret') rotation = retireDestinationSecret
    const target = sub === 'add' ? destination!.id : id as string
    if (target === DEFAULT_DESTINATION_ID) {
      throw new CommandFailure(`destination "default" of ${where} is its forward_url; change it with \`hookstream tools add ${toolId} --forward-url …\``)
    }
    const action = sub === 'add' ? 'destination_added' : sub === 'remove' ? 'destination_removed'
      : sub === 'rotate-secret' ? 'destination_secret_rotated' : sub === 'retire-secret' ? 'destination_secret_retired' : 'destination_updated'
    const changed = await store.changeDestinations(toolId, target, action, ACTOR, (list) =>
      sub === 'add' ? addDestination(list, destination, where)
        : sub === 'remove' ? removeDestination(list, target, where)
          : updateDestination(list, target, rotation ?? ((d) => Object.freeze({ ...d, enabled: sub === 'enable' })), where))
    if (!changed) throw new CommandFailure(`tool "${toolId}" does not exist any more; list tools with \`hookstream tools list\``)
    const after = changed.destinations?.find((d) => d.id === target)
    print(io, flags, { tool_id: toolId, ...(after ? { destination: destinationToJSON(after) } : { removed: target }), ...(generated ? { secret: generated } : {}) }, () =>
      `destination "${target}" of ${where} ${DONE[sub]}; running services pick it up within their refresh interval` +
      (after && sub === 'add' ? `\n${formatFields(destinationToJSON(after))}` : '') +
      (generated ? `\nsigning secret (shown once; give it to the receiver): ${generated}` : ''))
    return 0
  })
}

/** `hookstream destinations` as registered in the CLI. */
export const destinationsSpec: CommandSpec = {
  summary: 'manage the destinations a tool fans out to: list, show, add, remove, enable, disable, rotate-secret, retire-secret (secrets are write-only)',
  usage: USAGE,
  flags: {
    ...JSON_FLAG,
    url: { type: 'string', description: 'add: where events are POSTed (http or https)' },
    'event-types': { type: 'string', description: 'add: comma-separated event types or globs with *, e.g. webhook.github.pull_request* (default: all)' },
    filter: { type: 'string', description: 'add: JSONata over the payload; only events for which it is true are delivered' },
    transform: { type: 'string', description: 'add: JSONata over the payload; its result is the body sent' },
    headers: { type: 'string', description: 'add: JSON object of extra request headers (prefer --headers-env: a flag shows in ps)' },
    'headers-env': { type: 'string', description: 'add: the environment variable holding the headers JSON' },
    timeout: { type: 'string', description: 'add: time for one request, e.g. 5s (100ms–60s)' },
    'retry-policy': { type: 'string', description: 'add: JSON retry policy (default: the tool\'s)' },
    'rate-limit': { type: 'string', description: 'add: JSON {"per_second": 50, "burst": 10}' },
    'max-concurrency': { type: 'string', description: 'add: requests in flight at once to this destination' },
    'auto-disable-after': { type: 'string', description: 'add: disable it after it failed every delivery this long, e.g. 5d (1s–365d; default off)' },
    'secret-env': { type: 'string', description: 'add, rotate-secret: the environment variable holding the signing secret (default: a generated whsec_ secret, printed once)' },
    'previous-expires-in': { type: 'string', description: 'rotate-secret: how long the previous secret keeps signing, e.g. 24h (default: until retire-secret)' },
    disabled: { type: 'boolean', description: 'add: store the destination disabled' },
    file: { type: 'string', description: 'add: read the destination from a JSON or YAML file' },
  },
  run: destinationsCommand,
}
