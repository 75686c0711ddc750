import type { Server } from "node:http";

/**
 * Stops accepting, ends idle keep-alive connections at once, lets requests in flight finish for up
 * to `drainMs`, then cuts what is left (a live-updates stream never ends by itself).
 */
export async function drainServer(server: Server, drainMs: number): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const cut = setTimeout(() => server.closeAllConnections(), drainMs);
  try {
    await closed;
  } finally {
    clearTimeout(cut);
  }
}
