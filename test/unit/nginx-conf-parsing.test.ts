/**
 * What test-before-swap reads of nginx's config (pure): the include directives as nginx's
 * tokenizer splits them, the tar archives the Docker Engine returns, the files `nginx -T` dumped.
 */
import { describe, expect, it } from 'vitest';
import { findIncludes, quoteWord, rewriteIncludes } from '../../src/nginx/conf-includes.js';
import { dumpedFiles } from '../../src/nginx/run.js';
import { readTar } from '../../src/nginx/tar-read.js';

describe('include directives', () => {
  it('finds includes at any depth, with quotes and escapes resolved, and skips comments and other directives', () => {
    const text = [
      '# include commented.conf;',
      'include modules-enabled/*.conf;',
      'http {',
      '  include "conf.d/my file.conf"; # include no.conf;',
      "  include 'x\\'y.conf';",
      '  server { location / { include snippets/a\\ b.conf; } }',
      '  map $x ${y} { include maps/*.map; }',
      '  log_format include "include z.conf;";',
      '}',
    ].join('\n');
    expect(findIncludes(text).map((i) => i.value)).toEqual([
      'modules-enabled/*.conf',
      'conf.d/my file.conf',
      "x'y.conf",
      'snippets/a b.conf',
      'maps/*.map',
    ]);
  });

  it('rewrites only the includes it is asked to, as quoted words, leaving the rest of the text as it was', () => {
    const text = 'http {\n  include conf.d/*.conf;\n  include mime.types;\n}\n';
    const out = rewriteIncludes(text, (inc) => (inc.value === 'conf.d/*.conf' ? '/t/.orchestry-test-x/d/*.conf' : undefined));
    expect(out).toBe('http {\n  include "/t/.orchestry-test-x/d/*.conf";\n  include mime.types;\n}\n');
    expect(quoteWord('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(findIncludes(`include ${quoteWord('a"b\\c d')};`)[0]!.value).toBe('a"b\\c d');
  });
});

/** One ustar header block for `name` with `size` bytes of type `type`. */
function header(name: string, size: number, type: string, linkname = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write(type, 156);
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257);
  h.write('00', 263);
  return h;
}

/** A PAX record `"<len> key=value\n"`, whose length counts its own digits. */
function paxRecord(key: string, value: string): Buffer {
  const rest = ` ${key}=${value}\n`;
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len++;
  return Buffer.from(`${len}${rest}`);
}

const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);

describe('tar archives from the Docker Engine', () => {
  it('reads directories, files, links and PAX long names', () => {
    const content = Buffer.from('events {}\n');
    const long = `nginx/${'n'.repeat(120)}.conf`;
    const pax = paxRecord('path', long);
    const archive = Buffer.concat([
      header('nginx/', 0, '5'),
      header('nginx/nginx.conf', content.length, '0'),
      pad(content),
      header('nginx/current', 0, '2', 'nginx.conf'),
      header('././@PaxHeader', pax.length, 'x'),
      pad(pax),
      header('nginx/short', 0, '0'),
      Buffer.alloc(1024),
    ]);
    const entries = readTar(archive);
    expect(entries.map((e) => [e.name, e.type])).toEqual([
      ['nginx', 'dir'],
      ['nginx/nginx.conf', 'file'],
      ['nginx/current', 'symlink'],
      [long, 'file'],
    ]);
    expect(entries[1]!.content.toString()).toBe('events {}\n');
    expect(entries[2]!.linkname).toBe('nginx.conf');
  });

  it('refuses a truncated archive', () => {
    expect(() => readTar(Buffer.concat([header('nginx/nginx.conf', 2048, '0'), Buffer.alloc(512)]))).toThrow('truncated tar archive');
  });
});

describe('files nginx -T read', () => {
  it('lists each "# configuration file" line in order', () => {
    const dump = 'nginx: the configuration file /e/n.conf syntax is ok\n# configuration file /e/n.conf:\nhttp {}\n\n# configuration file /e/conf.d/a b.conf:\r\nupstream a {}\n';
    expect(dumpedFiles(dump)).toEqual(['/e/n.conf', '/e/conf.d/a b.conf']);
  });
});
