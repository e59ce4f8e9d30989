package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestUsersImport100k imports 100,000 users (Werkzeug pbkdf2 hashes, as a Flask
// export has them) with the keyward binary into each backend, in one transaction and
// then again with --skip-existing --batch 10000, and logs the time and the peak
// memory (the process's maximum resident set) of each run: the figures of
// docs/performance.md. Opt in with KEYWARD_IMPORT_100K=1; it takes about a minute.
func TestUsersImport100k(t *testing.T) {
	if os.Getenv("KEYWARD_IMPORT_100K") != "1" {
		t.Skip("set KEYWARD_IMPORT_100K=1 to import 100,000 users")
	}
	const n = 100_000
	file := filepath.Join(t.TempDir(), "users.jsonl")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	key := make([]byte, 32)
	for i := range n {
		rand.Read(key)
		line, _ := json.Marshal(map[string]any{
			"id": i + 1, "username": fmt.Sprintf("user%06d", i), "email": fmt.Sprintf("user%06d@example.com", i),
			"email_verified": i%2 == 0, "disabled": i%50 == 0, "created_at": "2020-01-02T03:04:05Z",
			"password_hash": "pbkdf2:sha256:260000$" + hex.EncodeToString(key[:8]) + "$" + hex.EncodeToString(key),
		})
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, _ := os.Stat(file)
	bin := testsupport.BuildKeyward(t)
	for _, b := range storagetest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			if strings.HasPrefix(dsn, "sqlite:") {
				dsn = "sqlite:" + filepath.Join(t.TempDir(), "import.db")
			}
			for _, args := range [][]string{{}, {"--skip-existing", "--batch", "10000"}} {
				cmd := exec.Command(bin, append([]string{"--database", dsn, "users", "import", file, "--output", "json"}, args...)...)
				cmd.Env = append(os.Environ(), "KEYWARD_PASSWORD_HASH_CEILING=m=65536,t=3,bcrypt=12")
				start := time.Now()
				out, err := cmd.Output()
				took := time.Since(start)
				if err != nil {
					t.Fatalf("import %v: %v\n%s", args, err, out)
				}
				var sum struct{ Imported, Skipped int }
				if err := json.Unmarshal(out, &sum); err != nil {
					t.Fatalf("summary %s: %v", out, err)
				}
				if len(args) == 0 && sum.Imported != n || len(args) > 0 && sum.Skipped != n {
					t.Fatalf("import %v: %s", args, out)
				}
				rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
				t.Logf("%s: %d users from %.1f MiB %v: %.1f s, peak RSS %.0f MiB (imported %d, skipped %d)",
					b.Name, n, float64(st.Size())/(1<<20), args, took.Seconds(), float64(rss)/1024, sum.Imported, sum.Skipped)
			}
		})
	}
}
