/**
 * Setup file of the unit project (vitest.config.ts): a unit test that opens a socket, binds a
 * port, starts a process or opens a file fails at once, naming what it tried. Tests that need
 * any of these belong in test/integration.
 *
 * Why these hooks:
 * - Sockets and ports are caught on the prototypes (net.Socket#connect, net.Server#listen,
 *   dgram.Socket#bind/#send): every client (http, undici's fetch, net.connect) and every server
 *   ends there, however the module was imported, so nothing can go round them.
 * - Processes: ChildProcess#spawn is what spawn, exec, execFile and fork all call; the sync
 *   variants have no shared entry point, so their exports are replaced (and the ESM named
 *   exports synced). Installed before the test file is imported: importing cannot start one either.
 * - Files: the calls that open a path (read, write, open, mkdtemp, mkdir, rm, rename, readdir,
 *   watch, streams), only while tests run (beforeAll to afterAll), because importing modules
 *   reads files (src/version.ts reads package.json, Node's CommonJS loader reads through
 *   fs.readFileSync). Paths under node_modules stay open for lazily loaded dependencies. Calls on
 *   open file descriptors (pino writing to stdout) are not opens and are not touched.
 * Timers are not guarded: vitest's own test timeouts use them. Unit tests take a manual clock
 * (src/clock.ts createManualClock) instead.
 */
import childProcess from 'node:child_process';
import dgram from 'node:dgram';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll } from 'vitest';

const refuse = (what: string): never => {
  throw new Error(`unit tests do no I/O: ${what} (move the test to test/integration)`);
};

function stubMethod(target: object, name: string, what: (args: unknown[]) => string): void {
  Object.defineProperty(target, name, {
    configurable: true,
    writable: true,
    value: (...args: unknown[]) => refuse(what(args)),
  });
}

/** host:port (or path) of a connect or listen call, whichever way its arguments were given. */
const endpoint = (args: unknown[]) => {
  // net.connect() hands Socket#connect its arguments already normalised, as one array.
  const given = Array.isArray(args[0]) ? (args[0] as unknown[]) : args;
  const [first, second] = given.filter((a) => typeof a !== 'function');
  if (typeof first === 'object' && first !== null) {
    const o = first as { host?: string; port?: number; path?: string };
    return o.path ?? `${o.host ?? ''}:${o.port ?? ''}`;
  }
  return second === undefined ? String(first) : `${String(second)}:${String(first)}`;
};

stubMethod(net.Socket.prototype, 'connect', (a) => `socket connect to ${endpoint(a)}`);
stubMethod(net.Server.prototype, 'listen', (a) => `server listen on ${endpoint(a)}`);
stubMethod(dgram.Socket.prototype, 'bind', () => 'udp bind');
stubMethod(dgram.Socket.prototype, 'send', () => 'udp send');
stubMethod(childProcess.ChildProcess.prototype, 'spawn', (a) => `spawn ${JSON.stringify((a[0] as { file?: string })?.file)}`);
for (const name of ['spawnSync', 'execSync', 'execFileSync'] as const) {
  stubMethod(childProcess, name, (a) => `${name} ${JSON.stringify(a[0])}`);
}
syncBuiltinESMExports();

/** fs calls that open or change a path, by the module object they live on. */
const PATH_CALLS: Array<[object, string[]]> = [
  [fs, [
    'readFile', 'readFileSync', 'writeFile', 'writeFileSync', 'appendFile', 'appendFileSync', 'open', 'openSync',
    'mkdtemp', 'mkdtempSync', 'mkdir', 'mkdirSync', 'rm', 'rmSync', 'rename', 'renameSync', 'readdir', 'readdirSync',
    'watch', 'watchFile', 'createReadStream', 'createWriteStream',
  ]],
  [fs.promises, ['readFile', 'writeFile', 'appendFile', 'open', 'mkdtemp', 'mkdir', 'rm', 'rename', 'readdir', 'opendir', 'watch']],
];

const originals: Array<[Record<string, unknown>, string, unknown]> = [];

beforeAll(() => {
  for (const [target, names] of PATH_CALLS) {
    const t = target as Record<string, unknown>;
    for (const name of names) {
      const original = t[name] as (...args: unknown[]) => unknown;
      originals.push([t, name, original]);
      t[name] = function guarded(this: unknown, ...args: unknown[]) {
        const path = args[0] instanceof URL ? args[0].pathname : String(args[0]);
        if (path.includes('/node_modules/')) return original.apply(this, args);
        return refuse(`fs.${name}(${JSON.stringify(path)})`);
      };
    }
  }
  syncBuiltinESMExports();
});

afterAll(() => {
  for (const [target, name, original] of originals.splice(0)) target[name] = original;
  syncBuiltinESMExports();
});
