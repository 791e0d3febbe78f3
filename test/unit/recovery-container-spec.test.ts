import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { cloneSpec } from '../../src/recovery/container-spec.js';

const ID = 'abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789';

/** An inspected compose-style container on two user networks, trimmed to what cloning reads. */
function inspected(over: { networkMode?: string; hostname?: string } = {}): Dockerode.ContainerInspectInfo {
  const networkMode = over.networkMode ?? 'shop_backend';
  const networks =
    networkMode === 'host'
      ? { host: { NetworkID: 'n0' } }
      : {
          shop_frontend: { Aliases: ['web', ID.slice(0, 12)], NetworkID: 'n1' },
          shop_backend: {
            Aliases: ['shop-web-1', 'web', ID.slice(0, 12)],
            IPAMConfig: { IPv4Address: '10.9.0.5' },
            Links: ['db:database'],
            NetworkID: 'n2',
          },
        };
  return {
    Id: ID,
    Name: '/shop-web-1',
    Image: 'sha256:1234',
    State: { Running: true } as Dockerode.ContainerInspectInfo['State'],
    Config: {
      Hostname: over.hostname ?? ID.slice(0, 12),
      Domainname: '',
      User: 'app',
      Env: ['PATH=/usr/bin', 'PORT=8000', 'NAME=web'],
      Cmd: ['serve'],
      Entrypoint: ['/usr/local/bin/node', '/app/server.mjs'],
      Image: 'shop/web:1.2',
      Labels: { 'orchestry.app': 'web', 'orchestry.port': '8000', 'orchestry.replica': '1' },
      ExposedPorts: { '8000/tcp': {} },
      Volumes: { '/data': {} },
      WorkingDir: '/app',
      Healthcheck: { Test: ['CMD', 'wget', '-q', 'http://127.0.0.1:8000/health'], Interval: 1e9 },
      StopSignal: 'SIGINT',
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
    } as unknown as Dockerode.ContainerInspectInfo['Config'],
    HostConfig: {
      NetworkMode: networkMode,
      Binds: ['/srv/web:/data:ro'],
      RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
      Memory: 268435456,
      PortBindings: { '8000/tcp': [{ HostIp: '127.0.0.1', HostPort: '18000' }] },
    },
    NetworkSettings: { Networks: networks } as unknown as Dockerode.ContainerInspectInfo['NetworkSettings'],
  } as Dockerode.ContainerInspectInfo;
}

describe('cloneSpec', () => {
  it('recreates with the same name, image, config, host config and the first network at create', () => {
    const { create, connect } = cloneSpec(inspected(), { name: 'shop-web-1', sibling: false });
    expect(create).toEqual({
      name: 'shop-web-1',
      Image: 'shop/web:1.2',
      User: 'app',
      Env: ['PATH=/usr/bin', 'PORT=8000', 'NAME=web'],
      Cmd: ['serve'],
      Entrypoint: ['/usr/local/bin/node', '/app/server.mjs'],
      Labels: { 'orchestry.app': 'web', 'orchestry.port': '8000', 'orchestry.replica': '1' },
      ExposedPorts: { '8000/tcp': {} },
      Volumes: { '/data': {} },
      WorkingDir: '/app',
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Healthcheck: { Test: ['CMD', 'wget', '-q', 'http://127.0.0.1:8000/health'], Interval: 1e9 },
      StopSignal: 'SIGINT',
      HostConfig: inspected().HostConfig,
      NetworkingConfig: {
        EndpointsConfig: {
          shop_backend: { Aliases: ['shop-web-1', 'web'], Links: ['db:database'], IPAMConfig: { IPv4Address: '10.9.0.5' } },
        },
      },
    });
    expect(connect).toEqual([{ network: 'shop_frontend', endpoint: { Aliases: ['web'] } }]);
  });

  it('gives a sibling no static IP, no published host port and not the original\'s name alias', () => {
    const { create, connect } = cloneSpec(inspected(), {
      name: 'web-recovery-3',
      labels: { 'orchestry.recovery.added': 'true', 'orchestry.replica': '3' },
      sibling: true,
    });
    expect(create.NetworkingConfig).toEqual({
      EndpointsConfig: { shop_backend: { Aliases: ['web'], Links: ['db:database'] } },
    });
    expect(connect).toEqual([{ network: 'shop_frontend', endpoint: { Aliases: ['web'] } }]);
    expect(create.HostConfig?.PortBindings).toEqual({});
    expect(create.HostConfig?.Binds).toEqual(['/srv/web:/data:ro']);
    expect(create.Labels).toEqual({
      'orchestry.app': 'web',
      'orchestry.port': '8000',
      'orchestry.replica': '3',
      'orchestry.recovery.added': 'true',
    });
  });

  it('with host networking sets only NetworkMode host and a new port in the env', () => {
    const { create, connect } = cloneSpec(inspected({ networkMode: 'host', hostname: 'build-host' }), {
      name: 'web-recovery-3',
      env: { PORT: '20001', EXTRA: 'x' },
      sibling: true,
    });
    expect(create.NetworkingConfig).toBeUndefined();
    expect(create.Hostname).toBeUndefined();
    expect(create.HostConfig?.NetworkMode).toBe('host');
    expect(create.Env).toEqual(['PATH=/usr/bin', 'PORT=20001', 'NAME=web', 'EXTRA=x']);
    expect(connect).toEqual([]);
  });

  it('keeps an explicit hostname on a user network, and drops the generated one', () => {
    expect(cloneSpec(inspected({ hostname: 'web' }), { name: 'x', sibling: false }).create.Hostname).toBe('web');
    expect(cloneSpec(inspected(), { name: 'x', sibling: false }).create.Hostname).toBeUndefined();
  });

  it('does not alter the inspected data', () => {
    const info = inspected();
    cloneSpec(info, { name: 'x', env: { PORT: '1' }, sibling: true });
    expect(info).toEqual(inspected());
  });
});
