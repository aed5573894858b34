package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kouple/kouple/internal/pgtest"
)

// services: the base's data services from a module, timed inside bench/testdata/dbprobe: one primary-key
// query on the base's pool — embedded SQLite, and PostgreSQL when its binaries are installed (a throwaway
// cluster) — against the same query from the same program as its own native process on its own database; and
// one kv get, against the native process reading the key from its own SQLite file.
func (r *runner) services(ctx context.Context, rt string) error {
	var mod *artifactFile
	var err error
	if rt == "wasm" {
		mod, _, err = r.buildWasm(ctx, "bench/testdata/dbprobe")
	} else {
		mod, _, err = r.buildPlugin(ctx, "bench/testdata/dbprobe", "1.0.0-native")
	}
	if err != nil {
		return err
	}
	bin, err := r.buildNative(ctx, "bench/testdata/dbprobe")
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Minute}
	defer client.CloseIdleConnections()
	n := r.sizes.Calls

	b, err := r.startBase(ctx, r.cacheDir)
	if err != nil {
		return err
	}
	defer b.stop()
	if err := b.install(mod); err != nil {
		return err
	}
	p, nativeURL, err := r.startNative(ctx, bin, "/sql", "DBPROBE_DB="+filepath.Join(r.tmp, "dbprobe-native.db"))
	if err != nil {
		return err
	}
	defer p.stop()
	cmp := fmt.Sprintf("services (%s)", rt)
	if err := r.opsRow(client, cmp+", sql on SQLite", "one primary-key query, module through the base's pool vs native Go",
		b.gateway+mod.contextPath+"/sql", nativeURL+"/sql", "native process on its own SQLite file", n); err != nil {
		return err
	}
	if err := r.opsRow(client, cmp+", kv get", "one kv get from the module vs a key read from native Go's own SQLite file",
		b.gateway+mod.contextPath+"/kv", nativeURL+"/kv", "native process, SQLite primary-key read", n); err != nil {
		return err
	}

	pg, err := pgtest.Start(ctx)
	if errors.Is(err, pgtest.ErrNotInstalled) {
		r.add(Row{Comparison: cmp + ", sql on PostgreSQL", Metric: "one primary-key query", Kouple: "not measured: " + err.Error(), Baseline: "-"})
		return nil
	}
	if err != nil {
		return err
	}
	defer pg.Stop()
	baseDSN, err := pg.NewDatabase(ctx, "bench")
	if err != nil {
		return err
	}
	nativeDSN, err := pg.NewDatabase(ctx, "native")
	if err != nil {
		return err
	}
	// startBase passes this process's environment on: the base reads its DSN from KOUPLE_SQL_DSN.
	os.Setenv("KOUPLE_SQL_DSN", baseDSN)
	pb, err := r.startBase(ctx, r.cacheDir)
	os.Unsetenv("KOUPLE_SQL_DSN")
	if err != nil {
		return err
	}
	defer pb.stop()
	if err := pb.install(mod); err != nil {
		return err
	}
	pp, pgNativeURL, err := r.startNative(ctx, bin, "/sql", "DBPROBE_DB="+filepath.Join(r.tmp, "dbprobe-native-pg.db"), "DBPROBE_DSN="+nativeDSN)
	if err != nil {
		return err
	}
	defer pp.stop()
	return r.opsRow(client, cmp+", sql on PostgreSQL", "one primary-key query, module through the base's pool vs native Go (pgx)",
		pb.gateway+mod.contextPath+"/sql", pgNativeURL+"/sql", "native process, its own pgx pool", n)
}

// opsRow has the module and the native process each time n operations (after a warm-up) and adds the row.
func (r *runner) opsRow(client *http.Client, cmp, metric, moduleURL, nativeURL, baseline string, n int) error {
	per := func(url string) (time.Duration, error) {
		if _, err := timedOps(client, url, min(n, 100)); err != nil {
			return 0, err
		}
		return timedOps(client, url, n)
	}
	k, err := per(moduleURL)
	if err != nil {
		return err
	}
	nat, err := per(nativeURL)
	if err != nil {
		return err
	}
	r.add(Row{Comparison: cmp, Metric: metric, Kouple: us(k), Baseline: us(nat) + " " + baseline, Ratio: ratio(k, nat)})
	return nil
}

// timedOps asks dbprobe at url for n operations and answers the time per operation it measured.
func timedOps(client *http.Client, url string, n int) (time.Duration, error) {
	body, err := get(client, fmt.Sprintf("%s?n=%d", url, n))
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s answered %q", url, body)
	}
	return time.Duration(ns / int64(max(n, 1))), nil
}
