/**
 * `check-config --nginx` and `render` with nginx in a container (nginx.mode docker), as users
 * run them (dist/cli.js in a child process): nginx -t runs inside the container on a copy of its
 * main config that reads the rendered file, errors name the file as nginx sees it, the live file
 * is never touched, and `auto` is settled by `nginx -v` inside the container.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTestImages } from '../helpers/docker-images.js';
import { DOCKER_SOCKET, removeTestContainers, requireDocker } from '../helpers/docker.js';
import { sidecarYaml } from '../helpers/fixtures.js';
import { INCLUDED_PATH, startNginxContainer, type NginxContainer } from '../helpers/nginx-container.js';
import { useScratchDir } from '../helpers/scratch-dir.js';
import { runCli } from '../helpers/sidecar-process.js';

const SUITE = 'cli-nginx-docker';
const scratch = useScratchDir('orchestry-cli-nginx-docker-');
let nginx: NginxContainer;

beforeAll(async () => {
  await requireDocker();
  await removeTestContainers(SUITE);
  await ensureTestImages();
  nginx = await startNginxContainer({ suite: SUITE, upstreams: 'upstream web { server 127.0.0.1:9 down; }\n' });
}, 180_000);
afterAll(async () => {
  await nginx?.remove();
  await removeTestContainers(SUITE);
});

/** A config driving the container's nginx; `template` replaces the built-in template. */
async function configFor(name: string, template?: string): Promise<string> {
  return scratch.write(
    name,
    sidecarYaml({
      apps: { web: { backends: ['127.0.0.1:8001'] } },
      nginx: {
        mode: 'docker',
        container: nginx.name,
        config_path: '/etc/nginx/nginx.conf',
        output_path: nginx.outputPath,
        ...(template ? { template_path: await scratch.write(`${name}.hbs`, template) } : {}),
      },
      docker: { socket_path: DOCKER_SOCKET },
    }),
  );
}

async function liveState() {
  return { text: await readFile(nginx.outputPath, 'utf8'), mtime: (await stat(nginx.outputPath)).mtimeMs, names: (await readdir(join(nginx.dir, 'conf.d'))).sort() };
}

describe('check-config --nginx with nginx in a container', () => {
  it('runs nginx -t inside the container on the rendered file: passes a good config, names the file and directive of a bad one', async () => {
    const before = await liveState();
    const good = await runCli(['check-config', '--nginx', '--config', await configFor('good.yaml')]);
    // Its output in the message: CI saw exit 1 here (stderr inside a line of nginx -T's dump; see nginx-control-docker).
    expect(good.code, `${good.stdout}\n${good.stderr}`).toBe(0);
    expect(good.stdout).toContain(`nginx -t passed with the rendered nginx.output_path ${nginx.outputPath} (nginx in container "${nginx.name}")`);
    // update_via auto: nginx -v inside the container settles the mode, as the daemon does.
    expect(good.stderr).toMatch(/note: nginx\.update_via is auto: reload mode \(nginx 1\.\d+\.\d+ cannot re-resolve SRV records/);
    const template = (await readFile(join(import.meta.dirname, '../../templates/upstreams.conf.hbs'), 'utf8')).replace('{{#if keepalive}}', '    bogus_directive on;\n{{#if keepalive}}');
    const bad = await runCli(['check-config', '--nginx', '--config', await configFor('bad.yaml', template)]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(new RegExp(`\\[emerg\\] unknown directive "bogus_directive" in ${INCLUDED_PATH.replaceAll('.', '\\.')}:\\d+`));
    expect(await liveState()).toEqual(before);
  });

  it('says which container could not be found (exit 1), and render says it assumed reload mode', async () => {
    const path = await scratch.write(
      'gone.yaml',
      (await readFile(await configFor('base.yaml'), 'utf8')).replace(`container: ${nginx.name}`, 'container: orchestry-test-no-such-nginx'),
    );
    const check = await runCli(['check-config', '--nginx', '--config', path]);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain('  nginx -t could not run (nginx in container "orchestry-test-no-such-nginx"): nginx container "orchestry-test-no-such-nginx" not found (nginx.container)\n');
    const render = await runCli(['render', '--config', path]);
    expect(render.code).toBe(0);
    expect(render.stdout).toContain('server 127.0.0.1:8001');
    expect(render.stderr).toContain("note: nginx.update_via is auto and nginx's version could not be read (nginx container \"orchestry-test-no-such-nginx\" not found (nginx.container)): rendered for reload mode");
  });
});
