// pgx-probe: connects with Go pgx to the connection string given as its only
// argument, runs SELECT 1, and prints one JSON line saying whether the session
// is encrypted (pg_stat_ssl). Exits non-zero, with the driver's error on
// stderr, when it cannot connect. Built by scripts/build-driver-probes.sh for
// e2e/drivers.e2e.ts.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: pgx-probe CONNECTION-STRING")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close(ctx)
	var one int
	var ssl bool
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]any{"driver": "pgx", "one": one, "ssl": ssl})
	fmt.Println(string(out))
}
