import { runNginx, targetArgs, type NginxTarget } from './run.js';

/**
 * `nginx -t [-p prefix] -c config_path`: tests the real main config, so it checks exactly what
 * nginx would load. Resolves when valid; throws SidecarError (see runNginx) otherwise.
 */
export async function validateNginx(nginx: NginxTarget, opts: { timeoutMs?: number } = {}): Promise<void> {
  await runNginx(nginx.binary, ['-t', ...targetArgs(nginx)], opts);
}
