/**
 * Which addresses listen on a TCP port, read from the kernel (/proc/net/tcp and tcp6) rather than
 * from the process that claims it, so a test sees a listener on 0.0.0.0 or :: that a loopback
 * connection would not reveal. Linux only, as the test machines are.
 */
import fs from 'node:fs';
import net from 'node:net';

const LISTEN = '0A';

function ipv4(hex: string): string {
  // Little-endian 32-bit word: "0100007F" is 127.0.0.1.
  return [6, 4, 2, 0].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.');
}

function ipv6(hex: string): string {
  // Four little-endian 32-bit words.
  const bytes: string[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let i = 6; i >= 0; i -= 2) bytes.push(word.slice(i, i + 2));
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(`${bytes[i]}${bytes[i + 1]}`.toLowerCase());
  const full = groups.map((g) => g.replace(/^0+(?=.)/, '')).join(':');
  if (full === '0:0:0:0:0:0:0:0') return '::';
  if (full === '0:0:0:0:0:0:0:1') return '::1';
  return full;
}

/** Local addresses in LISTEN state on `port`, e.g. ['127.0.0.1'] or ['0.0.0.0', '::']. */
export function listeningAddresses(port: number): string[] {
  const out: string[] = [];
  for (const [file, decode] of [['/proc/net/tcp', ipv4], ['/proc/net/tcp6', ipv6]] as const) {
    if (!fs.existsSync(file)) continue;
    for (const line of fs.readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== LISTEN) continue;
      const [addr, portHex] = cols[1]!.split(':') as [string, string];
      if (parseInt(portHex, 16) === port) out.push(decode(addr));
    }
  }
  return out;
}

/** Resolves with the connect error's code ('ECONNREFUSED' when nothing listens), or 'connected'. */
export function tryConnect(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}
