/** `nginx`: where nginx and its files are, how it is reloaded, and how bursts of changes wait. */
import { isAbsolute, resolve } from 'node:path';
import { dnsName, fsPath, ipListenAddress } from './allowlists.js';
import { bool, duration, listOf, nullable, oneOf, readSection, str, type Report, type Section } from './check.js';
import { DEFAULT_NGINX, EJECT_MODES, LEAVE_TO_NGINX, NGINX_MODES, UPDATE_VIA } from './defaults.js';
import type { NginxConfig } from './types.js';

/** `nginx`'s keys. */
export const NGINX: Section<NginxConfig> = {
  defaults: DEFAULT_NGINX,
  fields: {
    mode: { check: oneOf(NGINX_MODES), meaning: 'local: nginx on this host (nginx -t, a signal or nginx -s reload); docker: nginx in its own container.' },
    container: { check: nullable(str), meaning: 'Mode docker: the nginx container, by name or id.' },
    container_label: { check: nullable(str), meaning: 'Mode docker: or the one running container with this label (key=value or key).' },
    binary: { check: fsPath, meaning: 'nginx executable for nginx -t and nginx -s reload; a bare name is looked up in PATH.' },
    config_path: { check: fsPath, meaning: 'The main nginx.conf, which must include output_path.' },
    output_path: { check: fsPath, meaning: "The generated upstreams file of http apps, which config_path includes inside http {} (never a symbolic link: it is replaced by rename)." },
    stream_output_path: { check: nullable(fsPath), meaning: "The generated upstreams file of stream (TCP) apps (upstream.context: stream), which config_path includes inside stream {}; null = no stream apps." },
    prefix: { check: nullable(fsPath), meaning: "nginx -p prefix; null keeps nginx's compiled-in prefix." },
    template_path: { check: nullable(fsPath), meaning: 'Handlebars template; null uses the built-in templates/upstreams.conf.hbs.' },
    pid_path: { check: nullable(fsPath), meaning: 'If set, reload by SIGHUP to the pid in this file; otherwise nginx -s reload.' },
    ejected: { check: oneOf(EJECT_MODES), meaning: "Default for every app's upstream.ejected." },
    coalesce_min_wait_seconds: { check: duration({ min: 0, max: 60 }), meaning: 'Quiet time after a change before rendering, so bursts reload once; a change that comes while nginx is being updated (or soon after) waits for a quiet as long as that update took.' },
    coalesce_max_wait_seconds: { check: duration({ min: 0, max: 60 }), meaning: 'Longest a change may wait, however busy (counted from the end of the update in flight when it came); at least coalesce_min_wait_seconds.' },
    validate: { check: bool, meaning: 'Run nginx -t before every swap.' },
    update_via: { check: oneOf(UPDATE_VIA), meaning: 'How routing changes reach nginx: dns (nginx >= 1.27.3 re-resolves SRV records the sidecar serves: no reload for ejections, readmissions or weights), reload (rewrite the file and reload), or auto (dns when nginx -v says >= 1.27.3).' },
    dns_listen: { check: ipListenAddress, meaning: "DNS mode: where the sidecar's DNS server listens, UDP and TCP (ip:port; port 0 picks a free one)." },
    dns_resolver: { check: nullable(ipListenAddress), meaning: "DNS mode: the address nginx's resolver queries (e.g. the sidecar's address seen from nginx's container); null = dns_listen as bound." },
    leave_to_nginx: { check: listOf(oneOf(LEAVE_TO_NGINX)), meaning: "Reload mode: failures nginx notices and retries by itself, left to its max_fails instead of a reload that resets client connections: refused (connections refused or reset), 5xx (answers 5xx, while the nginx access log (passive evidence) shows nginx passing that backend's 5xx on to another server: proxy_next_upstream http_500 ...; a 5xx that reaches a client, or no log, ejects by reload). [] ejects everything by reload." },
    proxy_read_timeout_seconds: { check: duration({ min: 0, max: 3600 }), meaning: "DNS mode: nginx's proxy_read_timeout. A backend that stops answering leaves the DNS answer no sooner than this after its first timed-out probe began, so nginx's own retries of the requests already waiting on it succeed first (nginx answers 502 to a retry once the upstream's servers changed since the request began). 0 = at once." },
    dns_zone: { check: dnsName, meaning: 'DNS mode: the zone the sidecar answers for; nginx asks SRV _http._tcp.<app>.<zone>.' },
  },
};

/** `nginx`, with relative paths resolved against `baseDir` (the config file's directory). */
export function parseNginx(value: unknown, baseDir: string | undefined, report: Report): NginxConfig {
  const nginx = readSection(value, 'nginx', NGINX, report);
  const abs = <T extends string | null>(p: T): T =>
    (p !== null && baseDir && !isAbsolute(p) ? resolve(baseDir, p) : p) as T;
  const { coalesce_min_wait_seconds: min, coalesce_max_wait_seconds: max } = nginx;
  if (max < min) {
    report(
      'nginx.coalesce_max_wait_seconds',
      `must be at least coalesce_min_wait_seconds (got ${max} < ${min})`,
    );
  }
  if (nginx.stream_output_path !== null && abs(nginx.stream_output_path) === abs(nginx.output_path)) {
    report('nginx.stream_output_path', `must differ from nginx.output_path (got ${nginx.stream_output_path})`);
  }
  if (nginx.mode === 'docker' && nginx.container === null && nginx.container_label === null) {
    report('nginx.container', 'must be set (or nginx.container_label) when nginx.mode is docker');
  }
  return {
    ...nginx,
    // A bare name is looked up in PATH; only a name with a slash is a path to resolve.
    binary: nginx.binary.includes('/') ? abs(nginx.binary) : nginx.binary,
    config_path: abs(nginx.config_path),
    prefix: abs(nginx.prefix),
    output_path: abs(nginx.output_path),
    stream_output_path: abs(nginx.stream_output_path),
    template_path: abs(nginx.template_path),
    pid_path: abs(nginx.pid_path),
  };
}
