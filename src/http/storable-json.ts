/** Default deepest nesting of arrays and objects ingest accepts (PostgreSQL's jsonb gives up far deeper). */
export const DEFAULT_MAX_JSON_DEPTH = 512

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN = new Set([0x5b, 0x7b])
const CLOSE = new Set([0x5d, 0x7d])

function hex4(bytes: Uint8Array, at: number): number {
  let value = 0
  for (let i = at; i < at + 4; i++) {
    const c = bytes[i]
    const digit = c === undefined ? -1 : c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : c >= 0x41 && c <= 0x46 ? c - 0x37 : -1
    if (digit < 0) return -1
    value = value * 16 + digit
  }
  return value
}

const UNICODE_ESCAPE = Buffer.from('\\u')

// the common case without the byte-by-byte walk: no \u escape at all, and no more opening brackets in the
// whole text than maxDepth (so no nesting can be deeper); native indexOf jumps from bracket to bracket
function plainlyStorable(bytes: Buffer, maxDepth: number): boolean {
  if (bytes.includes(UNICODE_ESCAPE)) return false
  let opened = 0
  for (const open of OPEN) {
    for (let at = bytes.indexOf(open); at !== -1; at = bytes.indexOf(open, at + 1)) {
      if (++opened > maxDepth) return false
    }
  }
  return true
}

/**
 * Tells why PostgreSQL's `jsonb` could not hold this JSON text, or `undefined` when it can: a `\u0000` escape
 * (jsonb has no NUL), an unpaired surrogate escape (`\ud800` not followed by a low surrogate, or a lone
 * `\udc00`), or arrays/objects nested deeper than `maxDepth`. One pass over the bytes, tracking strings,
 * escapes and depth; no parse. Call it on text that is valid JSON (it does not validate the rest).
 *
 * @example
 * unstorableJson(Buffer.from('{"zen":"lone \\ud800"}'), 512) // 'an unpaired surrogate escape (\\ud800) at byte 13'
 */
export function unstorableJson(text: Buffer | string, maxDepth: number = DEFAULT_MAX_JSON_DEPTH): string | undefined {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text
  if (plainlyStorable(bytes, maxDepth)) return undefined
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i] as number
    if (!inString) {
      if (c === QUOTE) inString = true
      else if (OPEN.has(c) && ++depth > maxDepth) return `arrays/objects nested more than ${maxDepth} levels deep (at byte ${i})`
      else if (CLOSE.has(c)) depth--
      continue
    }
    if (c === QUOTE) { inString = false; continue }
    if (c !== BACKSLASH) continue
    i++
    if (bytes[i] !== 0x75) continue // \" \\ \n …: one character, skipped
    const code = hex4(bytes, i + 1)
    const at = i - 1
    i += 4
    if (code === 0) return `a NUL escape (\\u0000) at byte ${at}`
    if (code >= 0xdc00 && code <= 0xdfff) return `an unpaired surrogate escape (\\u${code.toString(16)}) at byte ${at}`
    if (code >= 0xd800 && code <= 0xdbff) {
      const low = bytes[i + 1] === BACKSLASH && bytes[i + 2] === 0x75 ? hex4(bytes, i + 3) : -1
      if (low < 0xdc00 || low > 0xdfff) return `an unpaired surrogate escape (\\u${code.toString(16)}) at byte ${at}`
      i += 6
    }
  }
  return undefined
}
