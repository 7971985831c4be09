/**
 * Driver probe for postgres.js (e2e/drivers.e2e.ts), run as its own process
 * so that NODE_EXTRA_CA_CERTS applies the way a user sets it:
 *
 *   node dist/e2e/drivers/postgres-js.js CONNECTION-STRING [SSL-OPTION-JSON]
 *
 * Connects with the connection string exactly as given and, when a second
 * argument is given, with it as the `ssl` option (which takes precedence over
 * the URL's sslmode); runs SELECT 1, and prints one JSON line saying whether the session is encrypted
 * (pg_stat_ssl). Exits 1, with the driver's error on stderr, when it cannot
 * connect.
 */
import postgres from 'postgres';

const [url, sslOption] = process.argv.slice(2);
if (!url || process.argv.length > 4) {
  console.error('usage: node postgres-js.js CONNECTION-STRING [SSL-OPTION-JSON]');
  process.exit(2);
}
const sql = postgres(url, {
  max: 1,
  connect_timeout: 30,
  onnotice: () => undefined,
  ...(sslOption ? { ssl: JSON.parse(sslOption) } : {}),
});
try {
  const [{ one }] = await sql`SELECT 1 AS one`;
  const [{ ssl }] = await sql`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`;
  console.log(JSON.stringify({ driver: 'postgres.js', one, ssl }));
  await sql.end();
} catch (error) {
  console.error(`${(error as Error).name}: ${(error as Error).message}`);
  await sql.end({ timeout: 0 });
  process.exit(1);
}
