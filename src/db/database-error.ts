import { isPipelineError, PipelineError } from '../core/errors.js'
import { isDatabaseUnavailable } from './database.js'

/** The SQLSTATE of a database error, or `""`. */
export function sqlState(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : ''
}

/**
 * Tells whether PostgreSQL refused a statement because of the data in it (data exception 22…, integrity
 * constraint 23…, program limit 54… such as a too-deep jsonb), so the fault belongs to one row, not the server.
 *
 * @example
 * isRowError({ code: '22P02' }) // true: invalid input syntax (e.g. a lone surrogate in jsonb)
 */
export function isRowError(err: unknown): boolean {
  return /^(22|23|54)/.test(sqlState(err))
}

/**
 * The one database-error classifier of the worker path. Unreachable, too many connections, read-only, admin
 * shutdown → infrastructure `DATABASE_UNAVAILABLE` (hold the events); a row PostgreSQL refuses (constraint,
 * invalid text, jsonb limits) → permanent `rejectedCode` (dead-letter it); any other statement failure (a
 * missing table, no privilege) → infrastructure `STORE_FAILED` (hold: an operator must fix the database, the
 * events must not be dead-lettered for it). A PipelineError passes through unchanged.
 *
 * @example
 * try { await db.updateTable('webhook_events')… } catch (err) { throw classifyDatabaseError(err, 'marking 3 events forwarded') }
 */
export function classifyDatabaseError(err: unknown, what: string, rejectedCode = 'STORE_REJECTED'): PipelineError {
  if (isPipelineError(err)) return err
  const state = sqlState(err)
  const reason = `${(err as Error | null)?.message ?? String(err)}${state ? ` (SQLSTATE ${state})` : ''}`
  if (isDatabaseUnavailable(err)) {
    return new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE',
      `PostgreSQL is unreachable while ${what}: ${reason}; events stay unacked and are retried when it is back — check DATABASE_URL and the server`, { cause: err })
  }
  if (isRowError(err)) {
    return new PipelineError('permanent', rejectedCode,
      `PostgreSQL rejected the data while ${what}: ${reason}; the event is dead-lettered — fix the producer and re-queue it`, { cause: err })
  }
  return new PipelineError('infrastructure', 'STORE_FAILED',
    `PostgreSQL failed while ${what}: ${reason}; events stay unacked — check that migrations ran (hookstream migrate) and the user's privileges`, { cause: err })
}

/**
 * The admin and CLI side of the same classifier: PostgreSQL unreachable → infrastructure
 * `DATABASE_UNAVAILABLE` (the caller answers 503 / exits 1 with the reason); anything else, a PipelineError
 * included, passes through unchanged for the caller to report.
 *
 * @example
 * try { await db.selectFrom('webhook_dlq')… } catch (err) { throw unavailableOr(err, 'listing DLQ entries') }
 */
export function unavailableOr(err: unknown, what: string): unknown {
  if (isPipelineError(err) || !isDatabaseUnavailable(err)) return err
  return new PipelineError('infrastructure', 'DATABASE_UNAVAILABLE',
    `PostgreSQL is unreachable while ${what}: ${(err as Error).message}; check DATABASE_URL and the server`, { cause: err })
}
