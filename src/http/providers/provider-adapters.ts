import type { Provider } from '../../core/tool.js'
import { bitbucket } from './bitbucket.js'
import { generic } from './generic.js'
import { github } from './github.js'
import { gitlab } from './gitlab.js'
import { jira } from './jira.js'
import type { ProviderAdapter } from './provider.js'
import { standard } from './standard.js'

/**
 * The adapter of every provider a tool can name (`PROVIDERS` in src/core/tool.ts).
 *
 * @example
 * const adapter = PROVIDER_ADAPTERS[tool.provider]
 */
export const PROVIDER_ADAPTERS: Readonly<Record<Provider, ProviderAdapter>> = Object.freeze({
  github, gitlab, bitbucket, jira, standard, generic,
})
