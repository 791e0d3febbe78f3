import { describe, expect, it } from 'vitest';
import { nodeVersionProblem } from '../../src/cli/node-version.js';

describe('node version check', () => {
  it('refuses a Node older than engines with one line naming both versions', () => {
    expect(nodeVersionProblem('20.20.2', '>=22.19')).toBe('Node.js 22.19 or newer is required (package.json engines ">=22.19"); this is Node.js 20.20.2');
    expect(nodeVersionProblem('22.18.9', '>=22.19')).not.toBeNull();
    expect(nodeVersionProblem('22.19.0', '>=22.19.1')).not.toBeNull();
  });

  it('accepts the minimum and anything newer', () => {
    expect(nodeVersionProblem('22.19.0', '>=22.19')).toBeNull();
    expect(nodeVersionProblem('24.1.0', '>= 22.19.0')).toBeNull();
    expect(nodeVersionProblem('v23.0.0', '>=22.19')).toBeNull();
  });

  it('does not guess at ranges it does not read', () => {
    expect(nodeVersionProblem('18.0.0', '^22 || ^24')).toBeNull();
    expect(nodeVersionProblem('18.0.0', undefined)).toBeNull();
  });
});
