import type { RegistryRecord } from '../registry/registry.types.js';

/** A settled registry record with predictable values, for tests. */
export function testRecord(name: string, extra: Partial<RegistryRecord> = {}): RegistryRecord {
  return {
    name,
    container_id: `id-${name}`,
    volume_name: `pgdb-${name}-vol`,
    host_port: 40050,
    db: 'pg_x',
    user: 'u_x',
    created_at: new Date(0).toISOString(),
    postgres_version: 17,
    host: '127.0.0.1',
    password: 'pw',
    size_gb: 1,
    admin_password: 'admin-pw',
    memory_mb: 512,
    layout: 2,
    tls_not_after: new Date(Date.now() + 300 * 24 * 60 * 60 * 1000).toISOString(),
    ...extra,
  };
}
