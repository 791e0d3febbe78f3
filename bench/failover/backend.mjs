// One backend of bench/failover.mjs, as its own process so that a kill is a real process death
// (SIGKILL of this pid): `node backend.mjs NAME PORT`. Answers `/` with its name and `/health`
// with "ok" (what the sidecar probes), until the fault the parent schedules begins:
//   hang  accept every request (and probe) and never answer
//   500   answer every request and probe with 500
//   slow  answer every request and probe after 2 s
// (kill and kill-and-restart are done by the parent: SIGKILL, then a new process on the port.)
//
// IPC: sends {listening: t} once it listens and {received: [t, ...]} every 100 ms with the times
// requests for `/` arrived (wall-clock ms, the same clock as the client's and nginx's $msec), so
// the parent knows exactly when this backend got traffic. Receives {fault, at}: the fault begins
// with the first request that arrives at or after `at`.
import { createServer } from 'node:http';

const [name, portText] = process.argv.slice(2);
const SLOW_MS = 2000;
const wall = () => performance.timeOrigin + performance.now();

let fault = null;
let faultAt = Infinity;
let received = [];

process.on('message', (m) => {
  if (m && typeof m.fault === 'string') {
    fault = m.fault;
    faultAt = m.at;
  }
});

const server = createServer((req, res) => {
  const now = wall();
  if (req.url === '/') received.push(now);
  const body = req.url === '/health' ? 'ok' : name;
  const mode = now >= faultAt ? fault : null;
  if (mode === 'hang') return; // the socket stays open; nginx's read timeout or the probe's gives up
  if (mode === '500') {
    res.statusCode = 500;
    res.end(`${name} failing`);
  } else if (mode === 'slow') {
    setTimeout(() => res.end(body), SLOW_MS);
  } else {
    res.end(body);
  }
});
// Longer than nginx's upstream keepalive_timeout (60 s): otherwise Node closes an idle upstream
// connection just as nginx reuses it (a 502 the bench would blame on the fault).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;

server.listen(Number(portText), '127.0.0.1', () => process.send({ listening: wall() }));

setInterval(() => {
  if (received.length === 0) return;
  process.send({ received });
  received = [];
}, 100);

// The parent going away (bench interrupted) must not leave this process behind.
process.on('disconnect', () => process.exit(0));
