import { sql, type Kysely, type Selectable } from 'kysely'
import { PipelineError } from '../core/errors.js'
import { parseTool, toolToJSON, type ToolConfig } from '../core/tool.js'
import { isDatabaseUnavailable, type Database, type WebhookToolsTable } from './database.js'
import { decryptSecret, encryptSecret, parseEncryptionKey } from './secret-box.js'

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
   * HOOKSTREAM_ENCRYPTION_KEY: 64 hex characters, base64 of 32 bytes, or a passphrase of at least 16
   * characters (hashed with SHA-256). With it, secrets are stored AES-256-GCM encrypted. @defaultValue none
   */
  readonly encryptionKey?: string | Buffer
}

type ToolRow = Selectable<WebhookToolsTable>

function unavailable(err: unknown, what: string): unknown {
  return isDatabaseUnavailable(err)
    ? new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE',
      `PostgreSQL is unreachable while ${what}: ${(err as Error).message}; check DATABASE_URL and the server`, { cause: err })
    : err
}

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
  private readonly key: Buffer | undefined

  constructor(options: ToolStoreOptions) {
    if (!options?.db) throw new TypeError('ToolStore: "db" must be a Kysely instance (see createDb)')
    this.db = options.db
    const { encryptionKey } = options
    if (Buffer.isBuffer(encryptionKey)) {
      if (encryptionKey.length !== 32) throw new RangeError(`ToolStore: "encryptionKey" must be 32 bytes; got ${encryptionKey.length}`)
      this.key = encryptionKey
    } else {
      this.key = encryptionKey === undefined || encryptionKey === '' ? undefined : parseEncryptionKey(encryptionKey)
    }
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
      throw unavailable(err, 'listing tools')
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
      throw unavailable(err, `reading tool "${id}"`)
    }
    return row && this.fromRow(row)
  }

  /**
   * Creates or replaces a tool and logs `tool_upserted` (with the masked tool) for `actor`.
   * Resolves with whether the tool was new.
   */
  async upsert(tool: ToolConfig, actor: string): Promise<{ created: boolean }> {
    const json = toolToJSON(tool)
    const changes = {
      provider: tool.provider, tenant_id: tool.tenantId, processing_mode: tool.processingMode,
      secret: this.key && tool.secret ? encryptSecret(this.key, tool.secret, `tool:${tool.id}`) : tool.secret,
      forward_url: tool.forwardUrl ?? null,
      transform: tool.transform === undefined ? null : JSON.stringify(tool.transform),
      transform_timeout_ms: tool.transformTimeoutMs,
      retry_policy: JSON.stringify(json.retry_policy),
      signature: tool.signature === undefined ? null : JSON.stringify(tool.signature),
      enabled: tool.enabled,
    }
    try {
      return await this.db.transaction().execute(async (trx) => {
        const row = await trx.insertInto('webhook_tools').values({ id: tool.id, ...changes })
          .onConflict((oc) => oc.column('id').doUpdateSet({ ...changes, updated_at: sql<Date>`now()` }))
          // xmax is 0 only on a freshly inserted row version
          .returning(sql<boolean>`xmax = 0`.as('created')).executeTakeFirstOrThrow()
        await trx.insertInto('webhook_audit_log').values({
          entity: 'tool', action: 'tool_upserted', actor, event_id: null,
          details: JSON.stringify({ tool_id: tool.id, created: row.created, tool: json }),
        }).execute()
        return { created: row.created }
      })
    } catch (err) {
      throw unavailable(err, `storing tool "${tool.id}"`)
    }
  }

  /** Deletes a tool and logs `tool_deleted`; resolves false (and logs nothing) when there was none. */
  async remove(id: string, actor: string): Promise<boolean> {
    try {
      return await this.db.transaction().execute(async (trx) => {
        const gone = await trx.deleteFrom('webhook_tools').where('id', '=', id).returning('id').executeTakeFirst()
        if (!gone) return false
        await trx.insertInto('webhook_audit_log').values({
          entity: 'tool', action: 'tool_deleted', actor, event_id: null, details: JSON.stringify({ tool_id: id }),
        }).execute()
        return true
      })
    } catch (err) {
      throw unavailable(err, `deleting tool "${id}"`)
    }
  }

  private fromRow(row: ToolRow): ToolConfig {
    const what = `tool "${row.id}" (table webhook_tools)`
    return parseTool({
      id: row.id, provider: row.provider, secret: decryptSecret(this.key, row.secret, `tool:${row.id}`, what),
      tenant_id: row.tenant_id, processing_mode: row.processing_mode, forward_url: row.forward_url ?? undefined,
      transform: row.transform ?? undefined, transform_timeout: row.transform_timeout_ms ?? undefined, retry_policy: row.retry_policy, enabled: row.enabled,
      signature: row.signature ?? undefined,
    }, 'webhook_tools row')
  }
}
