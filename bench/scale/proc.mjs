// What the kernel says about a process: CPU time (/proc/PID/stat, every thread included) and
// memory (/proc/PID/status), and per thread (/proc/PID/task/TID) which thread spent the CPU.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on Linux). */
const TICKS = 100;

/** CPU seconds (user + system) the process has used so far, all threads; null once it is gone. */
export function cpuSeconds(pid) {
  try {
    return statCpu(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

function statCpu(text) {
  // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime (fields 14, 15)
}

/** CPU seconds per thread name (/proc/PID/task/TID/comm), e.g. {node: 12.3, WorkerThread: 0.8}. */
export function threadCpu(pid) {
  const out = {};
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        out[name] = (out[name] ?? 0) + statCpu(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    // the process is gone
  }
  return out;
}

/** From /proc/PID/status, in MB: rss (VmRSS), hwm (VmHWM, the peak), anon, file; null once gone. */
export function memory(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile'), threads: Number(/^Threads:\s+(\d+)/m.exec(text)?.[1]) };
}

/**
 * Samples `pids` every second for `seconds`: CPU as a share of one core over the window (summed
 * over the pids), RSS mean and max over the samples, and per-thread CPU of the first pid.
 */
export async function steadyWindow(pids, seconds) {
  const list = [pids].flat();
  const t0 = performance.now();
  const cpu0 = list.map(cpuSeconds);
  const threads0 = threadCpu(list[0]);
  const rss = [];
  const deadline = t0 + seconds * 1000;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, Math.min(1000, deadline - performance.now())));
    rss.push(list.map((p) => memory(p)?.rss ?? 0).reduce((a, b) => a + b, 0));
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = list.map(cpuSeconds);
  const threads1 = threadCpu(list[0]);
  const perThread = {};
  for (const [name, s] of Object.entries(threads1)) {
    const share = ((s - (threads0[name] ?? 0)) / wall) * 100;
    if (share >= 0.05) perThread[name] = round(share, 1);
  }
  return {
    seconds: round(wall, 1),
    cpuPercent: round((cpu1.reduce((a, b, i) => a + (b ?? 0) - (cpu0[i] ?? 0), 0) / wall) * 100, 1),
    rssMeanMb: round(rss.reduce((a, b) => a + b, 0) / Math.max(1, rss.length), 1),
    rssMaxMb: round(Math.max(...rss), 1),
    threadsPercent: perThread,
  };
}

export function round(x, digits = 0) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
