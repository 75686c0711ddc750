export function dockerRegistryConfig(options: {
  storage: string;
  port: number;
  htpasswd?: string | undefined;
  tls?: { certFile: string; keyFile: string } | undefined;
  cache?: boolean;
}): string;
