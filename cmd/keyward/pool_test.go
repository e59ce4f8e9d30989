package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestServeDatabasePool: serve opens its --database-pool PostgreSQL
// connections before it listens and keeps exactly those under load.
func TestServeDatabasePool(t *testing.T) {
	dir := t.TempDir()
	metricsAddr := testsupport.FreeAddr(t)
	p := startProcess(t, nil, "--demo", "--database", storagetest.PostgresDSN(t), "--key-encryption-key-file", writeKEK(t, dir),
		"--database-pool", "5", "--metrics-addr", metricsAddr)
	open := func() string {
		t.Helper()
		res, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(line, `go_sql_open_connections{db_name="keyward"} `); ok {
				return strings.TrimSpace(v)
			}
		}
		t.Fatalf("/metrics lacks go_sql_open_connections:\n%s", body)
		return ""
	}
	if n := open(); n != "5" {
		t.Fatalf("%s PostgreSQL connections open once serve listens, want all 5 of --database-pool", n)
	}
	secret, _ := demoCredentials(t, p)
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() { demoClientToken(t, p, secret) })
	}
	wg.Wait()
	if n := open(); n != "5" {
		t.Errorf("%s PostgreSQL connections open after 24 concurrent token requests, want 5", n)
	}

	_, err := serveConfigOf(t, nil, "--database-pool", "2")
	testsupport.WantError(t, err, "--database-pool must be 3 or more, got 2")
}
