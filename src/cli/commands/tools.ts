import { readFileSync } from 'node:fs'
import { parse as parseYaml } from 'yaml'
import { parseTool, toolToJSON, type ToolConfig, type ToolInput } from '../../core/tool.js'
import { ToolStore } from '../../db/tool-store.js'
import { formatTable, type Command } from '../command.js'
import { formatFields, print, stringFlag, UsageError, withContext } from './command-helpers.js'

const USAGE = 'usage: hookstream tools list | show <id> | add <id> --provider <p> --secret <s> [--secret-env VAR] [--tenant t] ' +
  '[--mode store|store_and_forward|transform_and_store] [--forward-url url] [--transform <json or jsonata>] [--transform-timeout 100ms] [--retry-policy <json>] ' +
  '[--signature none|<json>] [--disabled] | add --file tool.json|tool.yaml | remove <id>   (--json for JSON output)'

const ACTOR = 'cli'

function jsonFlag(name: string, raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch (err) {
    throw new UsageError(`--${name} must be JSON, e.g. '{"max_retries": 3, "initial_interval": "1s"}': ${(err as Error).message}`)
  }
}

/** The tool described by `add`'s flags or `--file`, as user input (validated later by parseTool). */
function toolInput(id: string | undefined, flags: Parameters<Command>[1], env: Readonly<Record<string, string | undefined>>): ToolInput {
  const file = stringFlag(flags, 'file')
  if (file !== undefined) {
    let parsed: unknown
    try {
      parsed = parseYaml(readFileSync(file, 'utf8'))
    } catch (err) {
      throw new UsageError(`--file ${file} could not be read as JSON or YAML: ${(err as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--file ${file} must hold one tool object`)
    const input = parsed as ToolInput
    if (id !== undefined && input.id !== undefined && input.id !== id) throw new UsageError(`tool id "${id}" differs from "id" in ${file}`)
    return { ...input, id: input.id ?? id }
  }
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
  if (transform !== undefined) input.transform = transform.trim().startsWith('{') ? jsonFlag('transform', transform) : transform
  const transformTimeout = stringFlag(flags, 'transform-timeout')
  if (transformTimeout !== undefined) input.transform_timeout = transformTimeout
  const retry = stringFlag(flags, 'retry-policy')
  if (retry !== undefined) input.retry_policy = jsonFlag('retry-policy', retry)
  const signature = stringFlag(flags, 'signature')
  if (signature !== undefined) input.signature = signature === 'none' ? 'none' : jsonFlag('signature', signature)
  if (flags.disabled) input.enabled = false
  return input
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
  if (!sub || !['list', 'show', 'add', 'remove'].includes(sub) || extra.length > 0) {
    io.stderr(`hookstream tools: ${sub ? `unknown or malformed subcommand "${[sub, id, ...extra].join(' ')}"` : 'missing subcommand'}\n${USAGE}`)
    return 1
  }
  return withContext('tools', flags, io, async (ctx) => {
    const store = new ToolStore({ db: ctx.db.db, ...(ctx.config.encryptionKey ? { encryptionKey: ctx.config.encryptionKey } : {}) })
    const fromConfig = new Map(ctx.config.tools.map((t) => [t.id, t]))
    if (sub === 'list') {
      const stored = await store.list()
      const ids = new Set(stored.map((t) => t.id))
      const all = [...stored.map((t) => ({ tool: t, source: 'store' })), ...[...fromConfig.values()].filter((t) => !ids.has(t.id)).map((t) => ({ tool: t, source: 'config' }))]
        .sort((a, b) => a.tool.id.localeCompare(b.tool.id))
      print(io, flags, all.map(({ tool, source }) => ({ ...toolToJSON(tool), source })), () => formatTable(all.map(({ tool, source }) => row(tool, source))))
      return 0
    }
    if (id === undefined && !(sub === 'add' && flags.file)) throw new UsageError(`tools ${sub} needs a tool id\n${USAGE}`)
    if (sub === 'show') {
      const stored = await store.get(id as string)
      const tool = stored ?? fromConfig.get(id as string)
      if (!tool) throw new UsageError(`tool "${id}" does not exist; list tools with \`hookstream tools list\``)
      const shown = { ...toolToJSON(tool), source: stored ? 'store' : 'config' }
      print(io, flags, shown, () => formatFields(shown))
      return 0
    }
    if (sub === 'remove') {
      if (!(await store.remove(id as string, ACTOR))) {
        throw new UsageError(fromConfig.has(id as string)
          ? `tool "${id}" is defined in the config file, not stored; remove it from the file's tools list`
          : `tool "${id}" does not exist; list tools with \`hookstream tools list\``)
      }
      print(io, flags, { removed: id }, () => `tool "${id}" removed; running services drop it within their refresh interval`)
      return 0
    }
    const input = toolInput(id, flags, io.env)
    const existing = typeof input.id === 'string' ? await store.get(input.id) : undefined
    // secrets are write-only: re-adding a tool without one keeps the stored secret
    const tool = parseTool({ ...input, ...(input.secret === undefined && existing ? { secret: existing.secret } : {}) }, 'tools add')
    const { created } = await store.upsert(tool, ACTOR)
    print(io, flags, { tool: toolToJSON(tool), created }, () =>
      `tool "${tool.id}" ${created ? 'created' : 'replaced'}; running services pick it up within their refresh interval\n${formatFields(toolToJSON(tool))}`)
    return 0
  })
}
