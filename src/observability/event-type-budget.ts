import { OTHER_LABEL_VALUE, UNKNOWN_LABEL_VALUE } from './label-guard.js'
import { positiveInteger } from '../core/positive-integer.js'

/** Options of `EventTypeBudget`. */
export interface EventTypeBudgetOptions {
  /** Distinct event types each tool (each `tool_id` label value) may add as labels. @defaultValue 50 */
  readonly perTool?: number
  /**
   * Distinct (tool, event type) pairs all tools together may add, so many tools cannot explode cardinality
   * either. @defaultValue 1000
   */
  readonly total?: number
}

const CONTROL = /[\u0000-\u001f\u007f]/

const positiveInt = positiveInteger.bind(undefined, 'EventTypeBudget')

/**
 * Bounds the `event_type` label per tool: each tool's first `perTool` distinct event types pass unchanged, its
 * later new ones fold into `"other"`, and once `total` (tool, event type) pairs are known every new pair folds
 * too. A tool that receives made-up event types therefore spends only its own budget, never another tool's.
 * Pass the tool's label value as it is exposed (already bounded), so the number of budgets stays bounded.
 * Empty or non-string event types become `"unknown"`; values longer than 128 characters or holding control
 * characters fold into `"other"`.
 *
 * @example
 * const types = new EventTypeBudget({ perTool: 50, total: 1000 })
 * counter.labels(types.bound('gh-main', 'webhook.github.release'), 'gh-main').inc()
 */
export class EventTypeBudget {
  readonly perTool: number
  readonly total: number
  readonly #byTool = new Map<string, Set<string>>()
  #pairs = 0

  constructor(options: EventTypeBudgetOptions = {}) {
    this.perTool = positiveInt('perTool', options.perTool ?? 50)
    this.total = positiveInt('total', options.total ?? 1000)
  }

  /** Returns `eventType` when tool `toolLabel` knows it or both budgets have room, otherwise `"other"`. */
  bound(toolLabel: string, eventType: string | undefined): string {
    if (typeof eventType !== 'string' || eventType === '') return UNKNOWN_LABEL_VALUE
    let known = this.#byTool.get(toolLabel)
    if (known?.has(eventType)) return eventType
    if (eventType.length > 128 || CONTROL.test(eventType) || (known?.size ?? 0) >= this.perTool || this.#pairs >= this.total) {
      return OTHER_LABEL_VALUE
    }
    if (!known) this.#byTool.set(toolLabel, (known = new Set()))
    known.add(eventType)
    this.#pairs++
    return eventType
  }
}
