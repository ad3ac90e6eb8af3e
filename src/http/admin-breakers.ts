import { readBreakerBoard } from '../sinks/breaker-board.js'
import type { AdminOptions } from './admin.js'
import { AdminError, guarded } from './admin-http.js'
import { sendJson, type Route } from './server.js'

/**
 * `GET /admin/breakers`: every destination whose circuit breaker is open or half-open, per worker process (each
 * worker keeps its own breakers and publishes their changes to Redis). Answers `{ breakers }`; Redis down is 503
 * `REDIS_UNAVAILABLE`.
 *
 * @example
 * createRouter(breakerRoutes(options)) // GET /admin/breakers
 */
export function breakerRoutes(options: Pick<AdminOptions, 'redis' | 'keys' | 'logger'>): Route[] {
  const list = guarded(async (_req, res) => {
    let breakers
    try {
      breakers = await readBreakerBoard(options.redis, options.keys.breakerStates)
    } catch (err) {
      throw new AdminError(503, 'REDIS_UNAVAILABLE', `reading the circuit-breaker states from Redis failed: ${(err as Error).message}; retry later`)
    }
    sendJson(res, 200, { breakers })
  }, options.logger)
  return [{ method: 'GET', path: '/admin/breakers', handler: list }]
}
