// What only the sidecar's own process can tell (its profiling phase runs with --inspect):
// process.memoryUsage() (array buffers included, which /metrics does not show), V8's heap spaces,
// and which CommonJS packages it has loaded (dockerode, ssh2, protobufjs... with Docker off?).
// One Runtime.evaluate over the DevTools protocol (Node's global WebSocket), then disconnect.

/** The expression evaluated in the sidecar; returns a JSON string. */
const PROBE = `(() => {
  const v8 = process.getBuiltinModule('v8');
  const files = Object.keys(process.getBuiltinModule('module')._cache);
  const packages = {};
  for (const f of files) {
    const m = [...f.matchAll(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/g)].at(-1);
    const key = m ? m[1] : '(not a package)';
    packages[key] = (packages[key] ?? 0) + 1;
  }
  return JSON.stringify({
    memoryUsage: process.memoryUsage(),
    heapSpaces: Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }])),
    commonjsFiles: files.length,
    packages,
  });
})()`;

/** Asks the process whose inspector listens on 127.0.0.1:port; resolves with the parsed answer. */
export async function inspectProcess(port, timeoutMs = 60_000) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const ws = new WebSocket(list[0].webSocketDebuggerUrl);
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`cannot connect to the inspector on port ${port}`));
    });
    const reply = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the inspector did not answer')), timeoutMs);
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.id !== 1) return;
        clearTimeout(timer);
        resolve(msg);
      };
      ws.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression: PROBE, returnByValue: true } }));
    });
    if (reply.result?.exceptionDetails) throw new Error(`evaluation failed: ${JSON.stringify(reply.result.exceptionDetails).slice(0, 500)}`);
    return JSON.parse(reply.result.result.value);
  } finally {
    ws.close();
  }
}
