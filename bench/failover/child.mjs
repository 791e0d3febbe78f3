// A child process of the bench (nginx, HAProxy, the sidecar) with an idempotent stop by its pid.

/**
 * Watches `child`: running() says whether it is alive, exited resolves when it exits, and stop()
 * sends `signal` once and waits for the exit (SIGKILL after `graceMs`).
 */
export function superviseChild(child, signal, graceMs = 10_000) {
  let alive = true;
  const exited = new Promise((resolve) =>
    child.once('exit', () => {
      alive = false;
      resolve();
    }),
  );
  return {
    running: () => alive,
    exited,
    async stop() {
      if (!alive) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
