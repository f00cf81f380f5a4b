/** Port selection on the supervisor's address: a free port by binding port 0, or "is this one still free". */
import net from 'node:net';

function tryListen(address: string, port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(null));
    srv.listen({ host: address, port, exclusive: true }, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr !== null ? addr.port : null;
      srv.close(() => resolve(got));
    });
  });
}

/** A port on `address` that was free a moment ago. */
export async function findFreePort(address: string): Promise<number> {
  const port = await tryListen(address, 0);
  if (port === null) throw new Error(`address: cannot bind a port on ${address}; is it an address of this machine?`);
  return port;
}

export async function isPortFree(address: string, port: number): Promise<boolean> {
  return (await tryListen(address, port)) !== null;
}
