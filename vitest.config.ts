import { defineConfig } from 'vitest/config';

/**
 * Two projects, run one after the other by `npm test`:
 * - unit: pure tests (no socket, process or file; see test/helpers/no-io-guard.ts), files in
 *   parallel; `npm run test:unit` is the fast loop.
 * - integration: real nginx, Docker, sockets and files; `npm run test:integration`.
 */
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          setupFiles: ['test/helpers/no-io-guard.ts'],
          // Pure tests share no state through the process, so files reuse workers instead of
          // paying a fresh one each (about a quarter of a second apiece).
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // Integration tests start real nginx processes and bind loopback ports; running files in
          // parallel on a 2-core machine only makes their timing noisier.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
