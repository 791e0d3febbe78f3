/**
 * Starts a worker thread from a module beside the caller. Built, `dir` is a dist/ file URL and
 * the worker runs `name.js`. Under vitest the caller runs from its TypeScript source: the
 * worker then runs `name.ts` with Node's type stripping, with a resolve hook mapping the
 * NodeNext `./x.js` specifiers to the `./x.ts` files next to them.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * The node options a worker starts with: inherited (undefined), unless the process runs from
 * `-e`/`--eval`/`-p`/`--print` or with `--input-type`, which apply to the main script only and
 * make a worker fail to start ("--input-type can only be used with string input"); then none.
 * None rather than the rest: a worker may not be given V8 options (ERR_WORKER_INVALID_EXEC_ARGV),
 * and those apply to the whole process anyway.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] | undefined {
  const mainOnly = (arg: string) => ['-e', '--eval', '-p', '--print', '-pe'].includes(arg) || /^--(input-type|eval|print)=/.test(arg);
  return execArgv.some(mainOnly) ? [] : undefined;
}

/** `callerUrl` is the caller's import.meta.url; `name` a sibling module without extension. */
export function startWorkerModule(callerUrl: string, name: string, given: WorkerOptions): Worker {
  const execArgv = workerExecArgv(process.execArgv);
  const options = execArgv ? { execArgv, ...given } : given;
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`${name}.js`, callerUrl), options);
  const entry = new URL(`${name}.ts`, callerUrl).href;
  const bootstrap = `
    require('node:module').registerHooks({
      resolve(specifier, context, next) {
        if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
          return next(specifier.slice(0, -3) + '.ts', context);
        }
        return next(specifier, context);
      },
    });
    import(${JSON.stringify(entry)});`;
  return new Worker(bootstrap, { ...options, eval: true });
}
