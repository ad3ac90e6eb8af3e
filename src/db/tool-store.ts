import { sql, type Kysely, type Selectable, type Transaction } from 'kysely'
import { ConfigError, isPipelineError } from '../core/errors.js'
import { destinationToInput, parseDestinations, type Destination } from '../core/destination.js'
import { refuseForwardSecretsSharedWithInbound } from '../core/destinations-without-secret.js'
import { parseTool, toolToJSON, type ToolConfig } from '../core/tool.js'
import type { Database, WebhookToolsTable } from './database.js'
import { appendAudit, type AuditAction } from './audit-log.js'
import { unavailableOr } from './database-error.js'
import { decryptSecret, deriveEncryptionKey, encryptSecret, isEncrypted, keyIdOf, type EncryptionKey } from './secret-box.js'

/**
 * Where ToolStore keeps tools, and the key that encrypts their secrets.
 *
 * @example
 * { db, encryptionKey: process.env.HOOKSTREAM_ENCRYPTION_KEY }
 */
export interface ToolStoreOptions {
  /** A Kysely instance from createDb, migrated. */
  readonly db: Kysely<Database>
  /**
   * HOOKSTREAM_ENCRYPTION_KEY: 64 hex characters, base64 of 32 bytes (HKDF-SHA256), or a passphrase of at
   * least 16 characters (scrypt, then HKDF). With it, secrets are stored AES-256-GCM encrypted with its key
   * id. @defaultValue none
   */
  readonly encryptionKey?: string | Buffer
  /** HOOKSTREAM_ENCRYPTION_KEY_PREVIOUS: the key before a rotation, only read with. @defaultValue none */
  readonly encryptionKeyPrevious?: string | Buffer
}

/** What `ToolStore.reencrypt` did: rows read, and rows rewritten with the current key. */
export interface ReencryptResult {
  readonly rows: number
  readonly rewritten: number
}

// the secret columns, the context each is bound to, and whether it holds JSON
const SECRET_COLUMNS = ['secret', 'previous_secret', 'forward_secret', 'previous_forward_secret', 'forward_headers', 'destinations'] as const
type SecretColumn = (typeof SECRET_COLUMNS)[number]
// `secret` keeps the context it had before migration 0003, so older rows still decrypt
const context = (id: string, column: SecretColumn) => (column === 'secret' ? `tool:${id}` : `tool:${id}:${column}`)

type ToolRow = Selectable<WebhookToolsTable>

/**
 * Tools kept in the `webhook_tools` table (the CLI's and admin API's tools; YAML tools stay in the file).
 * Every change writes a `webhook_audit_log` row in the same transaction. Secrets are encrypted at rest when
 * an encryption key is given and decrypted on read; rows stored in plain text before a key was set still read.
 *
 * @example
 * const store = new ToolStore({ db, encryptionKey: process.env.HOOKSTREAM_ENCRYPTION_KEY })
 * await store.upsert(parseTool({ id: 'gh-main', provider: 'github', secret: 's3cret' }), 'cli')
 * const tool = await store.get('gh-main')
 */
export class ToolStore {
  private readonly db: Kysely<Database>
  private readonly key: EncryptionKey | undefined
  // current first, then previous: the keys rows are read with
  private readonly keys: readonly EncryptionKey[]

  constructor(options: ToolStoreOptions) {
    if (!options?.db) throw new TypeError('ToolStore: "db" must be a Kysely instance (see createDb)')
    this.db = options.db
    const derive = (name: string, value: string | Buffer | undefined) => {
      if (value === undefined || value === '') return undefined
      if (Buffer.isBuffer(value) && value.length !== 32) throw new RangeError(`ToolStore: "${name}" must be 32 bytes; got ${value.length}`)
      return deriveEncryptionKey(value)
    }
    this.key = derive('encryptionKey', options.encryptionKey)
    const previous = derive('encryptionKeyPrevious', options.encryptionKeyPrevious)
    this.keys = [this.key, previous].filter((k): k is EncryptionKey => k !== undefined)
  }

  private seal(id: string, column: SecretColumn, value: string): string
  private seal(id: string, column: SecretColumn, value: string | undefined): string | null
  private seal(id: string, column: SecretColumn, value: string | undefined): string | null {
    if (value === undefined) return null
    return this.key && value ? encryptSecret(this.key, value, context(id, column)) : value
  }

  /**
   * All stored tools, by id. A row that is invalid or whose secret cannot be decrypted rejects the whole list,
   * or, with `onBadRow`, is left out and handed to it with the error.
   */
  async list(onBadRow?: (id: string, err: unknown) => void): Promise<ToolConfig[]> {
    let rows: ToolRow[]
    try {
      rows = await this.db.selectFrom('webhook_tools').selectAll().orderBy('id').execute()
    } catch (err) {
      throw unavailableOr(err, 'listing tools')
    }
    if (!onBadRow) return rows.map((row) => this.fromRow(row))
    return rows.flatMap((row) => {
      try {
        return [this.fromRow(row)]
      } catch (err) {
        onBadRow(row.id, err)
        return []
      }
    })
  }

  /** One tool, or undefined when no row has that id. */
  async get(id: string): Promise<ToolConfig | undefined> {
    let row: ToolRow | undefined
    try {
      row = await this.db.selectFrom('webhook_tools').selectAll().where('id', '=', id).executeTakeFirst()
    } catch (err) {
      throw unavailableOr(err, `reading tool "${id}"`)
    }
    return row && this.fromRow(row)
  }

  /**
   * Creates or replaces a tool and logs `action` (with the masked tool) for `actor`.
   * Resolves with whether the tool was new.
   */
  async upsert(tool: ToolConfig, actor: string, action: AuditAction = 'tool_upserted'): Promise<{ created: boolean }> {
    try {
      return await this.db.transaction().execute((trx) => this.write(trx, tool, actor, action))
    } catch (err) {
      throw unavailableOr(err, `storing tool "${tool.id}"`)
    }
  }

  /**
   * Creates or replaces tool `id` with the tool `build` makes from the stored one (undefined when there is none,
   * or when the row no longer passes validation: replacing is its repair), read under the row lock, so what the
   * new tool keeps of the old (write-only secrets, destinations left out) is the row as it is, not as an earlier
   * read saw it. A row this store cannot decrypt throws its ConfigError. `build` may throw, which stores nothing. Logs
   * `tool_upserted`. Resolves with what `build` returned and whether the tool was new.
   *
   * @example
   * await store.replace('gh-main', (existing) => ({ tool: parseTool(keepWriteOnly(input, existing)) }), 'admin-api')
   */
  async replace<T extends { readonly tool: ToolConfig }>(id: string, build: (existing: ToolConfig | undefined) => T,
    actor: string): Promise<T & { created: boolean }> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('webhook_tools').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()
        const built = build(row && this.keptFrom(row))
        return { ...built, ...(await this.write(trx, built.tool, actor, 'tool_upserted')) }
      })
    } catch (err) {
      throw unavailableOr(err, `storing tool "${id}"`)
    }
  }

  // the stored tool a replacement keeps write-only values from. A row that no longer passes validation has
  // nothing to keep: replacing it whole is its repair (the TOOL_UNREADABLE message says so). A row this
  // process cannot decrypt is not overwritten: its secrets may be fine under the right key
  private keptFrom(row: ToolRow): ToolConfig | undefined {
    try {
      return this.fromRow(row)
    } catch (err) {
      if (isPipelineError(err) && err.kind === 'permanent') return undefined
      throw err
    }
  }

  private async write(trx: Transaction<Database>, tool: ToolConfig, actor: string, action: AuditAction): Promise<{ created: boolean }> {
    const changes = this.columns(tool)
    const row = await trx.insertInto('webhook_tools').values({ id: tool.id, ...changes })
      .onConflict((oc) => oc.column('id').doUpdateSet({ ...changes, updated_at: sql<Date>`now()` }))
      // xmax is 0 only on a freshly inserted row version
      .returning(sql<boolean>`xmax = 0`.as('created')).executeTakeFirstOrThrow()
    await appendAudit(trx, [{ entity: 'tool', action, actor, details: { tool_id: tool.id, created: row.created, tool: toolToJSON(tool) } }])
    return { created: row.created }
  }

  /**
   * Changes a stored tool under a row lock (`SELECT … FOR UPDATE`), so two concurrent changes to its destinations
   * never lose one: `change` gets the stored tool and returns the new one (or throws, which changes nothing).
   * Logs `action` with `details` and the masked tool. Resolves with the new tool, or undefined when there is none.
   *
   * @example
   * await store.modify('gh-main', (t) => ({ ...t, enabled: false }), 'cli', 'tool_upserted')
   */
  async modify(id: string, change: (tool: ToolConfig) => ToolConfig, actor: string, action: AuditAction,
    details: Record<string, unknown> = {}): Promise<ToolConfig | undefined> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const row = await trx.selectFrom('webhook_tools').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()
        if (!row) return undefined
        const next = change(this.fromRow(row))
        await trx.updateTable('webhook_tools').set({ ...this.columns(next), updated_at: sql<Date>`now()` }).where('id', '=', id).execute()
        await appendAudit(trx, [{ entity: 'tool', action, actor, details: { tool_id: id, ...details, tool: toolToJSON(next) } }])
        return next
      })
    } catch (err) {
      throw unavailableOr(err, `changing tool "${id}"`)
    }
  }

  // the row's columns for a tool, secrets sealed. Every write (admin API, CLI) passes here, so a forward signing
  // secret equal to the inbound one is refused for all of them, as loadConfig refuses it in a config file
  private columns(tool: ToolConfig) {
    refuseForwardSecretsSharedWithInbound(tool)
    return {
      provider: tool.provider, tenant_id: tool.tenantId, processing_mode: tool.processingMode,
      secret: this.seal(tool.id, 'secret', tool.secret),
      previous_secret: this.seal(tool.id, 'previous_secret', tool.previousSecret),
      previous_secret_expires_at: tool.previousSecretExpiresAt === undefined ? null : new Date(tool.previousSecretExpiresAt),
      forward_secret: this.seal(tool.id, 'forward_secret', tool.forwardSecret),
      previous_forward_secret: this.seal(tool.id, 'previous_forward_secret', tool.previousForwardSecret),
      previous_forward_secret_expires_at: tool.previousForwardSecretExpiresAt === undefined ? null : new Date(tool.previousForwardSecretExpiresAt),
      forward_headers: this.seal(tool.id, 'forward_headers', tool.forwardHeaders && JSON.stringify(tool.forwardHeaders)),
      forward_url: tool.forwardUrl ?? null,
      destinations: this.seal(tool.id, 'destinations', tool.destinations && JSON.stringify(tool.destinations.map(destinationToInput))),
      transform: tool.transform === undefined ? null : JSON.stringify(tool.transform),
      transform_timeout_ms: tool.transformTimeoutMs,
      max_body_bytes: tool.maxBodyBytes ?? null,
      retry_policy: JSON.stringify(toolToJSON(tool).retry_policy),
      signature: tool.signature === undefined ? null : JSON.stringify(tool.signature),
      delivery_id: tool.deliveryId === undefined ? null : JSON.stringify(tool.deliveryId),
      enabled: tool.enabled,
    }
  }

  /**
   * Changes a stored tool's destinations with `modify` (row lock, one audit row `action` naming `destinationId`):
   * `next` gets the current list and returns the new one, which is checked as a whole (at most 20, unique ids)
   * as YAML and the tool routes check it. Resolves with the changed tool, or undefined when none is stored.
   *
   * @example
   * await store.changeDestinations('gh', 'ci', 'destination_removed', 'cli', (list) => removeDestination(list, 'ci', 'tool "gh"'))
   */
  async changeDestinations(toolId: string, destinationId: string, action: AuditAction, actor: string,
    next: (current: readonly Destination[]) => readonly Destination[]): Promise<ToolConfig | undefined> {
    return this.modify(toolId, (tool) => {
      const destinations = parseDestinations(`tool "${tool.id}"`, next(tool.destinations ?? []).map(destinationToInput))
      const { destinations: _old, ...rest } = tool
      return Object.freeze({ ...rest, ...(destinations.length > 0 ? { destinations } : {}) })
    }, actor, action, { destination_id: destinationId })
  }

  /** Deletes a tool and logs `tool_deleted`; resolves false (and logs nothing) when there was none. */
  async remove(id: string, actor: string): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const gone = await trx.deleteFrom('webhook_tools').where('id', '=', id).returning('id').executeTakeFirst()
        if (!gone) return false
        await appendAudit(trx, [{ entity: 'tool', action: 'tool_deleted', actor, details: { tool_id: id } }])
        return true
      })
    } catch (err) {
      throw unavailableOr(err, `deleting tool "${id}"`)
    }
  }

  /**
   * Moves every stored secret to the current key (HOOKSTREAM_ENCRYPTION_KEY): values written with the
   * previous key, `enc:v1:` values and plain-text values are decrypted and encrypted again, each row in its own
   * transaction under a row lock; logs one `tools_reencrypted` audit row. Rejects with a ConfigError when no
   * key is set or a value cannot be decrypted with the current or previous key (rows already moved stay moved).
   *
   * @example
   * await new ToolStore({ db, encryptionKey: next, encryptionKeyPrevious: old }).reencrypt('cli') // { rows: 3, rewritten: 3 }
   */
  async reencrypt(actor: string): Promise<ReencryptResult> {
    const key = this.key
    if (!key) throw new ConfigError('HOOKSTREAM_ENCRYPTION_KEY', 'is not set; set the key secrets should be encrypted with, then run reencrypt again')
    const stale = (v: string | null) => v !== null && v !== '' && (!isEncrypted(v) || keyIdOf(v) !== key.id)
    let ids: { id: string }[]
    try {
      ids = await this.db.selectFrom('webhook_tools').select('id').orderBy('id').execute()
    } catch (err) {
      throw unavailableOr(err, 'listing tools to re-encrypt')
    }
    let rewritten = 0
    for (const { id } of ids) {
      try {
        rewritten += await this.db.transaction().execute(async (trx) => {
          const row = await trx.selectFrom('webhook_tools').selectAll().where('id', '=', id).forUpdate().executeTakeFirst()
          if (!row || !SECRET_COLUMNS.some((c) => stale(row[c]))) return 0
          const changes: Partial<Record<SecretColumn, string>> = {}
          for (const column of SECRET_COLUMNS) {
            const value = row[column]
            if (value === null || !stale(value)) continue
            const plain = decryptSecret(this.keys, value, context(id, column), `tool "${id}" (column ${column})`)
            changes[column] = encryptSecret(key, plain, context(id, column))
          }
          await trx.updateTable('webhook_tools').set(changes).where('id', '=', id).execute()
          return 1
        })
      } catch (err) {
        throw unavailableOr(err, `re-encrypting tool "${id}"`)
      }
    }
    try {
      await appendAudit(this.db, [{ entity: 'tool', action: 'tools_reencrypted', actor, details: { key_id: key.id, rows: ids.length, rewritten } }])
    } catch (err) {
      throw unavailableOr(err, 'logging the re-encryption')
    }
    return { rows: ids.length, rewritten }
  }

  private fromRow(row: ToolRow): ToolConfig {
    const what = `tool "${row.id}" (table webhook_tools)`
    const open = (column: SecretColumn) => {
      const value = row[column]
      return value === null ? undefined : decryptSecret(this.keys, value, context(row.id, column), what)
    }
    const headers = open('forward_headers')
    const destinations = open('destinations')
    return parseTool({
      id: row.id, provider: row.provider, secret: open('secret'),
      tenant_id: row.tenant_id, processing_mode: row.processing_mode, forward_url: row.forward_url ?? undefined,
      transform: row.transform ?? undefined, transform_timeout: row.transform_timeout_ms ?? undefined, retry_policy: row.retry_policy, enabled: row.enabled,
      signature: row.signature ?? undefined, delivery_id: row.delivery_id ?? undefined, max_body: row.max_body_bytes ?? undefined,
      previous_secret: open('previous_secret'), previous_secret_expires_at: row.previous_secret_expires_at?.getTime(),
      forward_secret: open('forward_secret'), previous_forward_secret: open('previous_forward_secret'),
      previous_forward_secret_expires_at: row.previous_forward_secret_expires_at?.getTime(),
      forward_headers: headers === undefined ? undefined : JSON.parse(headers),
      destinations: destinations === undefined ? undefined : JSON.parse(destinations),
    }, 'webhook_tools row')
  }
}
