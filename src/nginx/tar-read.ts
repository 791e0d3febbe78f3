/**
 * Reads the tar archives the Docker Engine's archive endpoint (`GET /containers/{id}/archive`)
 * returns: ustar headers, PAX extended headers (Go's archive/tar writes them for long or
 * non-ASCII names) and GNU long names. Only what the nginx control needs: names, types, link
 * targets and file contents. Pure.
 */

export interface TarEntry {
  /** Path inside the archive, without a trailing slash (`nginx/conf.d`). */
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  /** Symlink target. */
  linkname: string;
  /** File contents (empty for anything else). */
  content: Buffer;
}

const BLOCK = 512;

/** The entries of a tar archive; throws on a truncated or malformed one. */
export function readTar(buf: Buffer): TarEntry[] {
  const entries: TarEntry[] = [];
  let pending: { name?: string; linkname?: string } = {};
  let at = 0;
  while (at + BLOCK <= buf.length) {
    const header = buf.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break;
    const size = numberField(header.subarray(124, 136));
    const type = String.fromCharCode(header[156]!);
    const start = at + BLOCK;
    if (start + size > buf.length) throw new Error('truncated tar archive');
    const body = buf.subarray(start, start + size);
    at = start + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      pending = { ...pending, ...paxRecords(body) };
      continue;
    }
    if (type === 'L' || type === 'K') {
      const value = cString(body);
      pending = type === 'L' ? { ...pending, name: value } : { ...pending, linkname: value };
      continue;
    }
    if (type === 'g') continue;
    const prefix = cString(header.subarray(345, 500));
    const ustar = cString(header.subarray(257, 263)).startsWith('ustar');
    const short = cString(header.subarray(0, 100));
    const name = pending.name ?? (ustar && prefix ? `${prefix}/${short}` : short);
    const linkname = pending.linkname ?? cString(header.subarray(157, 257));
    pending = {};
    entries.push({
      name: name.replace(/\/+$/, ''),
      type: type === '0' || type === '\0' || type === '7' ? 'file' : type === '5' ? 'dir' : type === '2' ? 'symlink' : 'other',
      linkname,
      content: type === '0' || type === '\0' || type === '7' ? Buffer.from(body) : Buffer.alloc(0),
    });
  }
  return entries;
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end === -1 ? b.length : end).toString('utf8');
}

/** An octal field, or base-256 when its high bit is set (GNU, for sizes over 8 GiB). */
function numberField(b: Buffer): number {
  if (b[0]! & 0x80) {
    let n = b[0]! & 0x7f;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i]!;
    return n;
  }
  const text = cString(b).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/** `"<len> key=value\n"` records; only path and linkpath matter here. */
function paxRecords(body: Buffer): { name?: string; linkname?: string } {
  const out: { name?: string; linkname?: string } = {};
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    if (space === -1) break;
    const len = parseInt(body.subarray(at, space).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const record = body.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') out.name = value;
    if (key === 'linkpath') out.linkname = value;
    at += len;
  }
  return out;
}
