package testsupport

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// PrivatePostgres is a PostgreSQL cluster of one test's own, in a temporary
// directory and on a free loopback port, so the test may stop, kill and
// restart it without disturbing any other test (the shared server on
// 127.0.0.1:5432 must never be stopped).
type PrivatePostgres struct {
	// DSN is the address of its postgres database as the superuser
	// postgres (trust authentication, loopback only).
	DSN  string
	Addr string // 127.0.0.1:port
	bin  string // directory of initdb and pg_ctl
	dir  string // the data directory
	log  string // the server's log file
	user string // the operating-system user the server runs as ("" is this one)
}

// postgresBinDir finds the directory of initdb and pg_ctl: pg_config
// --bindir, else Debian's /usr/lib/postgresql/*/bin (newest first).
func postgresBinDir() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	return ""
}

// StartPrivatePostgres creates a cluster with initdb and starts it. As root
// (initdb refuses root) it runs the server as the system user postgres.
// Without PostgreSQL's programs the test is skipped, or fails when
// KEYWARD_TEST_POSTGRES_REQUIRED=1. The cluster is stopped (immediate) and
// removed when the test ends. conf adds server settings ("name=value").
func StartPrivatePostgres(t testing.TB, conf ...string) *PrivatePostgres {
	t.Helper()
	bin := postgresBinDir()
	if bin == "" {
		if os.Getenv("KEYWARD_TEST_POSTGRES_REQUIRED") == "1" {
			t.Fatal("PostgreSQL is required (KEYWARD_TEST_POSTGRES_REQUIRED=1) but initdb was not found (pg_config --bindir, /usr/lib/postgresql/*/bin)")
		}
		t.Skip("no PostgreSQL programs (initdb, pg_ctl) to run a private cluster")
	}
	root := t.TempDir()
	p := &PrivatePostgres{bin: bin, dir: filepath.Join(root, "data"), log: filepath.Join(root, "postgres.log")}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, a private PostgreSQL needs the system user postgres: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.user = "postgres"
		// The server's user must reach its directory: t.TempDir and the
		// test's directory above it are 0700.
		for _, d := range []string{filepath.Dir(root), root} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{p.dir} {
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		f, err := os.Create(p.log)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := os.Chown(p.log, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	p.run(t, "initdb", "-D", p.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	p.Addr = FreeAddr(t)
	_, port, _ := net.SplitHostPort(p.Addr)
	settings := append([]string{"listen_addresses='127.0.0.1'", "port=" + port, "unix_socket_directories=''", "fsync=off"}, conf...)
	if err := os.WriteFile(filepath.Join(p.dir, "postgresql.auto.conf"), []byte(strings.Join(settings, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.DSN = "postgres://postgres@" + p.Addr + "/postgres?sslmode=disable"
	t.Cleanup(func() {
		if p.running() {
			p.pgctl(context.Background(), "stop", "-w", "-m", "immediate")
		}
		if t.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				t.Logf("private PostgreSQL log (tail):\n%s", tail(string(b), 3000))
			}
		}
	})
	p.Start(t)
	return p
}

// Start starts the cluster and waits until it accepts connections.
func (p *PrivatePostgres) Start(t testing.TB) {
	t.Helper()
	if out, err := p.pgctl(t.Context(), "start", "-w", "-t", "60", "-l", p.log); err != nil {
		b, _ := os.ReadFile(p.log)
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tail(string(b), 3000))
	}
}

// Stop stops the cluster with pg_ctl stop -m mode: "smart", "fast" (roll
// back open transactions, close connections) or "immediate" (abort, as a
// crash would; recovery runs at the next start).
func (p *PrivatePostgres) Stop(t testing.TB, mode string) {
	t.Helper()
	if out, err := p.pgctl(t.Context(), "stop", "-w", "-m", mode); err != nil {
		t.Fatalf("pg_ctl stop -m %s: %v\n%s", mode, err, out)
	}
}

func (p *PrivatePostgres) running() bool {
	_, err := os.Stat(filepath.Join(p.dir, "postmaster.pid"))
	return err == nil
}

func (p *PrivatePostgres) pgctl(ctx context.Context, args ...string) ([]byte, error) {
	return p.command(ctx, "pg_ctl", append([]string{"-D", p.dir}, args...)...).CombinedOutput()
}

func (p *PrivatePostgres) run(t testing.TB, prog string, args ...string) {
	t.Helper()
	if out, err := p.command(t.Context(), prog, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", prog, err, out)
	}
}

// command runs one of PostgreSQL's programs as the server's user.
func (p *PrivatePostgres) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, prog)
	if p.user == "" {
		return exec.CommandContext(ctx, path, args...)
	}
	return exec.CommandContext(ctx, "runuser", append([]string{"-u", p.user, "--", path}, args...)...)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprint("…", s[len(s)-n:])
}
