import { mkdirSync } from 'node:fs'
import { Kysely, PostgresDialect, type ColumnType, type Generated } from 'kysely'
import pg from 'pg'
import { pgliteDialect } from './pglite-dialect.js'

/** A `timestamptz` column: read as a Date, written as a Date or an ISO 8601 string. */
type Timestamp = ColumnType<Date, Date | string, Date | string>
/** A `timestamptz` column with a database default. */
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>
/** A `jsonb` column: read as the parsed JS value, written as JSON text (so arrays and strings round-trip). */
type Json = ColumnType<unknown, string, string>
/** A nullable `jsonb` column. */
type NullableJson = ColumnType<unknown, string | null | undefined, string | null>

/** `webhook_events`: one row per stored event; the key is `(tool_id, id)`, `id` being the sender's delivery id. */
/** Where one (event, destination) pair stands. */
export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'filtered' | 'disabled'

/** The `webhook_events.deliveries` column: each destination's state with its attempt count and last error code. */
export type DeliveryStates = Record<string, {
  readonly state: DeliveryState
  /** Retries so far (0: the first attempt). */
  readonly attempts?: number
  /** The error code of a failed pair (e.g. `DESTINATION_4XX`). */
  readonly error_code?: string
  /** When the state was set (ISO 8601). */
  readonly at: string
}>

export interface WebhookEventsTable {
  id: string
  tool_id: string
  tenant_id: string
  event_type: string
  repository: string
  payload: Json
  transformed: NullableJson
  /** The Redis stream entry id the event was read from. */
  stream_id: string
  received_at: Timestamp
  processed_at: GeneratedTimestamp
  forwarded_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  /** Fan-out state per destination id (migration 0006): `{ "<id>": { state, attempts?, error_code?, at } }`; NULL without destinations. */
  deliveries: ColumnType<DeliveryStates | null, string | null | undefined, string | null>
}

/** Status of a dead-letter row. At most one row per event is open (pending, retrying or failed). */
export type DlqStatus = 'pending' | 'retrying' | 'resolved' | 'failed' | 'discarded'

/** How a DLQ row keeps its event: as jsonb, or as the raw bytes when jsonb cannot hold them. */
export type DlqEventFormat = 'jsonb' | 'raw'

/** `webhook_dlq`: dead-lettered events. Re-failures update the open row; they never insert another. */
export interface WebhookDlqTable {
  /** Identity; read as a number on both drivers. */
  id: Generated<number>
  event_id: string
  tool_id: string
  /**
   * The original StreamEvent, or the raw stream fields when the entry could not be decoded; NULL when
   * `event_format` is `raw`.
   */
  event: ColumnType<unknown, string | null | undefined, string | null>
  /** The stream entry's `event` field byte for byte, when jsonb cannot hold it (`event_format` `raw`). */
  event_raw: ColumnType<Buffer | Uint8Array | null, Buffer | null | undefined, Buffer | null>
  /** `jsonb`: the event is in `event`; `raw`: jsonb refused it (a lone surrogate, deep nesting) and it is in `event_raw`. */
  event_format: ColumnType<DlqEventFormat, DlqEventFormat | undefined, DlqEventFormat>
  error: string
  /** The failure kind (permanent, transient, infrastructure). */
  error_class: string
  /** The PipelineError code, e.g. `DESTINATION_4XX`. */
  error_code: string | null
  retry_count: ColumnType<number, number | undefined, number>
  status: ColumnType<DlqStatus, DlqStatus | undefined, DlqStatus>
  failed_at: GeneratedTimestamp
  next_retry_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  resolved_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  updated_at: GeneratedTimestamp
}

/** `webhook_tools`: tools managed through the CLI or admin API (YAML tools are not stored here). */
export interface WebhookToolsTable {
  id: string
  provider: string
  /** The signing secret, `enc:v2:<key id>:<base64 iv|tag|ciphertext>` when an encryption key is configured. */
  secret: string
  tenant_id: string
  processing_mode: string
  forward_url: string | null
  transform: NullableJson
  /** The tool's transform budget in milliseconds; NULL (or left out on insert) for the default. */
  transform_timeout_ms: ColumnType<number | null, number | null | undefined, number | null>
  /** Migration 0005: the largest request body the tool accepts, in bytes; NULL for INGEST_MAX_BODY. */
  max_body_bytes: ColumnType<number | null, number | null | undefined, number | null>
  /** The tool's destinations as JSON (encrypted like the secrets when a key is set: they hold secrets and headers). */
  destinations: ColumnType<string | null, string | null | undefined, string | null>
  retry_policy: Json
  signature: NullableJson
  /** `generic` tools: where the delivery id is, `{ header }` or `{ pointer }` (added by migration 0002). */
  delivery_id: NullableJson
  enabled: boolean
  created_at: GeneratedTimestamp
  updated_at: GeneratedTimestamp
  /** Migration 0003: the previous inbound secret during a rotation (encrypted like `secret`) and when it expires. */
  previous_secret: ColumnType<string | null, string | null | undefined, string | null>
  previous_secret_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>
  /** Migration 0003: the forward signing secret and the previous one (encrypted like `secret`). */
  forward_secret: ColumnType<string | null, string | null | undefined, string | null>
  previous_forward_secret: ColumnType<string | null, string | null | undefined, string | null>
  previous_forward_secret_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>
  /** Migration 0003: JSON of the forward headers, encrypted like `secret`. */
  forward_headers: ColumnType<string | null, string | null | undefined, string | null>
}

/** `webhook_audit_log`: one row per DLQ or tool change, who did it and when. */
export interface WebhookAuditLogTable {
  id: Generated<number>
  at: GeneratedTimestamp
  event_id: string | null
  /** The tool of `event_id` (an event is identified by tool and delivery id); NULL for tool changes. */
  tool_id: ColumnType<string | null, string | null | undefined, string | null>
  /** `event`, `dlq` or `tool`. */
  entity: string
  /** e.g. `dead_lettered`, `dlq_requeued`, `dlq_resolved`, `dlq_failed`, `dlq_discarded`, `tool_upserted`, `tool_deleted`. */
  action: string
  actor: string
  details: Json
}

/** `webhook_deliveries` (migration 0007): one row per HTTP attempt to deliver an event to a destination. */
export interface WebhookDeliveriesTable {
  /** Identity; read as a number on both drivers. */
  id: Generated<number>
  tool_id: string
  event_id: string
  /** The destination's id (the tool's id for its `forward_url`). */
  destination_id: string
  /** 1 for the first attempt of the event to this destination. */
  attempt: number
  started_at: Timestamp
  duration_ms: number
  /** NULL when no response came (timeout, connection refused). */
  http_status: number | null
  /** `transient` or `permanent`; NULL for a success. */
  error_class: string | null
  /** The PipelineError code, e.g. `DESTINATION_5XX`; NULL for a success. */
  error_code: string | null
  /** The first 1 KiB of the response body. */
  response_body: string | null
  /** When the next attempt is due; NULL when none follows. */
  next_attempt_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>
  recorded_at: GeneratedTimestamp
}

/** The Kysely schema of hookstream's tables. */
export interface Database {
  webhook_events: WebhookEventsTable
  webhook_dlq: WebhookDlqTable
  webhook_tools: WebhookToolsTable
  webhook_audit_log: WebhookAuditLogTable
  webhook_deliveries: WebhookDeliveriesTable
}

/**
 * How to reach the database: give `url` or `pglitePath`.
 *
 * @example
 * { url: 'postgres://hookstream@127.0.0.1:5432/hookstream', poolSize: 20 }
 */
export interface CreateDbOptions {
  /** PostgreSQL connection URL (`postgres://user:pass@host:5432/db`). Give this or `pglitePath`. */
  readonly url?: string
  /** Data directory of an embedded PGlite database (created if missing; `memory://` keeps it in memory). */
  readonly pglitePath?: string
  /** Connections in the pg pool. @defaultValue 10 */
  readonly poolSize?: number
  /** How long to wait for a new pg connection before failing. @defaultValue 5000 */
  readonly connectTimeoutMs?: number
  /** Called when an idle pooled connection fails (e.g. the server restarted). @defaultValue ignore */
  readonly onPoolError?: (err: Error) => void
}

/** A Kysely instance over PostgreSQL or PGlite and how to close it. */
export interface Db {
  readonly db: Kysely<Database>
  readonly kind: 'postgres' | 'pglite'
  /** Connections open now: the pg pool's (idle and in use), or 1 for PGlite. For health's `open_connections`. */
  openConnections(): number
  /**
   * The pg pool's connections now (`total`, `idle`, queries `waiting` for one, the pool size `max`), for the
   * `webhook_db_pool_*` gauges; undefined for PGlite, which has no pool.
   */
  poolStats(): { readonly total: number; readonly idle: number; readonly waiting: number; readonly max: number } | undefined
  /** Closes the pool or the PGlite instance; a second call returns the same promise. */
  close(): Promise<void>
}

// int8 (bigint identity ids, count(*)) as a JS number, as PGlite returns it, so both drivers agree
const INT8_OID = 20
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

/**
 * Opens the database: a pg pool for `url`, or an embedded PGlite for `pglitePath` (tests, single-node
 * setups). The same SQL runs on both. Idle connections that break are reported to `onPoolError` and never
 * crash the process; the pool reconnects on the next query.
 *
 * @example
 * const { db, close } = await createDb({ url: process.env.DATABASE_URL })
 * await migrateToLatest(db)
 * await close()
 */
export async function createDb(options: CreateDbOptions): Promise<Db> {
  const { url, pglitePath } = options
  if ((url === undefined) === (pglitePath === undefined)) {
    throw new TypeError('createDb: give exactly one of "url" (PostgreSQL) or "pglitePath" (embedded PGlite)')
  }
  const poolSize = options.poolSize ?? 10
  if (!Number.isInteger(poolSize) || poolSize < 1) {
    throw new RangeError(`createDb: "poolSize" must be an integer of at least 1; got ${poolSize}`)
  }
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000
  if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 1) {
    throw new RangeError(`createDb: "connectTimeoutMs" must be a positive integer; got ${connectTimeoutMs}`)
  }
  let db: Kysely<Database>
  let kind: Db['kind']
  let pool: pg.Pool | undefined
  if (url !== undefined) {
    if (!URL.canParse(url)) throw new TypeError('createDb: "url" must be a PostgreSQL URL such as postgres://user@host:5432/db')
    pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: connectTimeoutMs, types: pgTypes })
    // without a listener, an idle client's socket error is re-thrown as an uncaught 'error' event
    const onPoolError = options.onPoolError ?? (() => {})
    pool.on('error', (err) => onPoolError(err))
    // a client checked out just as the server dies emits 'error' before its query starts, and pg-pool only
    // listens on idle clients; the query itself then fails and its caller sees the error
    pool.on('connect', (client) => client.on('error', () => {}))
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
    kind = 'postgres'
  } else {
    const dir = pglitePath as string
    if (!dir.includes('://')) mkdirSync(dir, { recursive: true })
    const { PGlite } = await import('@electric-sql/pglite')
    db = new Kysely<Database>({ dialect: pgliteDialect(await PGlite.create(dir)) })
    kind = 'pglite'
  }
  let closing: Promise<void> | undefined
  const poolStats = () => pool && { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: poolSize }
  return { db, kind, openConnections: () => pool?.totalCount ?? 1, poolStats, close: () => (closing ??= db.destroy()) }
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', '57P01', '57P02', '57P03', '53300', '25006'])
const UNAVAILABLE_MESSAGES = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed|PGlite is closed|Cannot use a pool after calling end/i

/**
 * Tells whether a database error means the server itself is unreachable (refused, dropped, shutting down,
 * connection exception class 08), as opposed to a problem with one statement or row.
 *
 * @example
 * catch (err) { if (isDatabaseUnavailable(err)) throw new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE', …) }
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false
  const e = err as { code?: unknown; message?: unknown; errors?: unknown }
  if (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || e.code.startsWith('08'))) return true
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGES.test(e.message)) return true
  // an AggregateError from connecting to several addresses (::1 and 127.0.0.1)
  return Array.isArray(e.errors) && e.errors.some(isDatabaseUnavailable)
}
