/** A one-line progress bar on stderr, drawn only when stderr is a TTY, at most every 100 ms. */
export interface ProgressBar {
  update(done: number): void
  done(): void
}

/**
 * Starts a progress bar for `label` out of `total`.
 *
 * @example
 * const bar = progressBar('source-drain #1', 20_000); bar.update(5000); bar.done()
 */
export function progressBar(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): ProgressBar {
  if (!stream.isTTY) return { update: () => {}, done: () => {} }
  const started = performance.now()
  let last = 0
  const draw = (done: number) => {
    const width = 30
    const frac = total > 0 ? Math.min(1, done / total) : 0
    const filled = Math.round(frac * width)
    const secs = (performance.now() - started) / 1000
    const rate = secs > 0 ? Math.round(done / secs).toLocaleString('en') : '–'
    stream.write(`\r${label.padEnd(32).slice(0, 32)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` +
      `${Math.round(frac * 100)}% ${done.toLocaleString('en')}/${total.toLocaleString('en')} ${rate}/s\x1b[K`)
  }
  return {
    update(done) {
      const now = performance.now()
      if (now - last < 100 && done < total) return
      last = now
      draw(done)
    },
    done() { stream.write('\r\x1b[K') },
  }
}
