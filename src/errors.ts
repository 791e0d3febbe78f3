/**
 * One error base for the project: a stable machine-readable code, a message that names the bad
 * value, and the underlying cause. Probe failures are not errors (they are data, see
 * probe/types.ts); these are for bad input and failed side effects.
 */
export class SidecarError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SidecarError';
    this.code = code;
  }
}

/** One invalid field of a configuration, template or label set. */
export interface FieldIssue {
  /** Dotted path, e.g. `apps.web.health.timeout_seconds`. */
  path: string;
  message: string;
  /** Where the value was written in the config file (1-based), when it was. */
  line?: number;
  column?: number;
}

/** Every problem of a rejected configuration, reported at once. */
export class ConfigError extends SidecarError {
  readonly issues: FieldIssue[];
  constructor(issues: FieldIssue[], source?: string) {
    const head = source ? `invalid configuration in ${source}` : 'invalid configuration';
    // `file:line:column: ` before an issue, as compilers write it: editors and terminals jump there.
    const at = (i: FieldIssue) => (source && i.line !== undefined ? `${source}:${i.line}:${i.column ?? 1}: ` : '');
    super('CONFIG_INVALID', `${head}:\n${issues.map((i) => `  ${at(i)}${formatIssue(i)}`).join('\n')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

export function formatIssue(issue: FieldIssue): string {
  return issue.path ? `${issue.path}: ${issue.message}` : issue.message;
}

/** Short text for any thrown value, for logs and API fields. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
