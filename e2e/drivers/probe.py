"""Driver probe for psycopg 3 and asyncpg (e2e/drivers.e2e.ts).

    python probe.py psycopg|asyncpg CONNECTION-STRING

Connects with the named driver and the connection string exactly as given,
runs SELECT 1, and prints one JSON line saying whether the session is
encrypted (pg_stat_ssl). Exits 1, with the driver's error on stderr, when it
cannot connect. Runs in the virtual environment that
scripts/build-driver-probes.sh makes.
"""
import asyncio
import json
import sys

SSL_QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def with_psycopg(url):
    import psycopg

    with psycopg.connect(url, connect_timeout=30) as conn:
        one = conn.execute("SELECT 1").fetchone()[0]
        ssl = conn.execute(SSL_QUERY).fetchone()[0]
    return {"driver": f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()})", "one": one, "ssl": ssl}


async def with_asyncpg(url):
    import asyncpg

    conn = await asyncpg.connect(url, timeout=30)
    try:
        one = await conn.fetchval("SELECT 1")
        ssl = await conn.fetchval(SSL_QUERY)
    finally:
        await conn.close()
    return {"driver": f"asyncpg {asyncpg.__version__}", "one": one, "ssl": ssl}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("psycopg", "asyncpg"):
        print("usage: probe.py psycopg|asyncpg CONNECTION-STRING", file=sys.stderr)
        return 2
    driver, url = sys.argv[1], sys.argv[2]
    try:
        seen = with_psycopg(url) if driver == "psycopg" else asyncio.run(with_asyncpg(url))
    except Exception as error:  # the driver's own error, for the test to match
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
