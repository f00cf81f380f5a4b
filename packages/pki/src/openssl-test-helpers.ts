/**
 * Test support: certificates made by the `openssl` CLI, so the validator is checked against
 * what users actually bring, and what this package issues is checked by another
 * implementation (`openssl verify`).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Runs openssl in `dir` (argv, never a shell); returns stdout, throws with stderr. */
export function openssl(dir: string, args: readonly string[], input?: string): string {
  try {
    return execFileSync('openssl', [...args], { cwd: dir, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input === undefined ? {} : { input }) });
  } catch (err) {
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String(err.stderr) : '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr.trim()}`);
  }
}

export interface MadeCert {
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
}

const KEY_ARGS: Readonly<Record<'ec' | 'rsa', readonly string[]>> = {
  ec: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  rsa: ['-newkey', 'rsa:2048'],
};

/** A self-signed server certificate from `openssl req -x509` for the given DNS names. */
export function selfSigned(dir: string, name: string, dnsNames: readonly string[], opts: { key?: 'ec' | 'rsa'; days?: number; eku?: string } = {}): MadeCert {
  mkdirSync(dir, { recursive: true });
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  openssl(dir, [
    'req', '-x509', ...KEY_ARGS[opts.key ?? 'ec'], '-nodes', '-keyout', keyFile, '-out', certFile, '-days', String(opts.days ?? 30),
    '-subj', `/CN=${dnsNames[0] ?? name}`,
    '-addext', `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}`,
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', `extendedKeyUsage=${opts.eku ?? 'serverAuth'}`,
  ]);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

/**
 * A certificate with explicit validity dates (`20200101000000Z`), made with `openssl ca`
 * (OpenSSL 3.0's req/x509 cannot set dates in the past), self-signed by its own key.
 */
export function withDates(dir: string, name: string, dnsNames: readonly string[], startdate: string, enddate: string): MadeCert {
  const work = path.join(dir, `${name}-ca`);
  mkdirSync(work, { recursive: true });
  writeFileSync(path.join(work, 'index.txt'), '');
  writeFileSync(path.join(work, 'serial'), '01\n');
  writeFileSync(
    path.join(work, 'ca.cnf'),
    ['[ ca ]', 'default_ca = c', '[ c ]', 'database = index.txt', 'new_certs_dir = .', 'serial = serial', 'default_md = sha256', 'policy = p', '[ p ]', 'commonName = supplied', ''].join('\n'),
  );
  writeFileSync(path.join(work, 'ext.cnf'), `subjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`);
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  openssl(work, ['req', '-new', ...KEY_ARGS.ec, '-nodes', '-keyout', keyFile, '-out', 'req.csr', '-subj', `/CN=${dnsNames[0] ?? name}`]);
  openssl(work, ['ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', keyFile, '-in', 'req.csr', '-out', certFile, '-notext', '-startdate', startdate, '-enddate', enddate, '-extfile', 'ext.cnf']);
  return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8'), certFile, keyFile };
}

export interface MadeChain {
  readonly root: MadeCert;
  readonly intermediate: MadeCert;
  readonly leaf: MadeCert;
}

/** root CA → intermediate CA → leaf for `dnsNames`, all ECDSA P-256, made with openssl. */
export function chain(dir: string, dnsNames: readonly string[]): MadeChain {
  mkdirSync(dir, { recursive: true });
  const f = (n: string): string => path.join(dir, n);
  openssl(dir, [
    'req', '-x509', ...KEY_ARGS.ec, '-nodes', '-keyout', f('root.key'), '-out', f('root.pem'), '-days', '30', '-subj', '/CN=Test Root CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  openssl(dir, ['req', '-new', ...KEY_ARGS.ec, '-nodes', '-keyout', f('inter.key'), '-out', f('inter.csr'), '-subj', '/CN=Test Intermediate CA']);
  writeFileSync(f('inter.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
  openssl(dir, ['x509', '-req', '-in', f('inter.csr'), '-CA', f('root.pem'), '-CAkey', f('root.key'), '-CAcreateserial', '-out', f('inter.pem'), '-days', '30', '-extfile', f('inter.ext')]);
  openssl(dir, ['req', '-new', ...KEY_ARGS.ec, '-nodes', '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', `/CN=${dnsNames[0] ?? 'leaf'}`]);
  writeFileSync(f('leaf.ext'), `basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${dnsNames.map((n) => `DNS:${n}`).join(',')}\n`);
  openssl(dir, ['x509', '-req', '-in', f('leaf.csr'), '-CA', f('inter.pem'), '-CAkey', f('inter.key'), '-CAcreateserial', '-out', f('leaf.pem'), '-days', '30', '-extfile', f('leaf.ext')]);
  const made = (n: string): MadeCert => ({ cert: readFileSync(f(`${n}.pem`), 'utf8'), key: readFileSync(f(`${n}.key`), 'utf8'), certFile: f(`${n}.pem`), keyFile: f(`${n}.key`) });
  return { root: made('root'), intermediate: made('inter'), leaf: made('leaf') };
}
