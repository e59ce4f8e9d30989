package main

import (
	"bytes"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/lib/pq"
)

// needs skips a test that needs what bench/run needs: taskset, two cores,
// and for PostgreSQL root, the postgres user and pg_config.
func needs(t *testing.T, postgres bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts servers and measures the machine")
	}
	tools := []string{"taskset", "openssl", "go"}
	if postgres {
		tools = append(tools, "pg_config", "runuser")
		if os.Geteuid() != 0 {
			t.Skip("starts PostgreSQL as the postgres user: needs root")
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
}

// The private cluster runs pinned, answers on its own port and leaves
// nothing behind.
func TestPrivateCluster(t *testing.T) {
	needs(t, true)
	c, err := startCluster(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.stop()
	if c.port == 5432 {
		t.Fatal("the shared PostgreSQL's port")
	}
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(status, []byte("Cpus_allowed_list:\t0\n")) {
		t.Fatalf("postmaster %d not pinned to core 0:\n%s", pid, status)
	}
	dsn, err := c.createDB(t.Context(), "bench_test")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// A backend forked for this connection inherits the pin.
	var backend int
	if err := db.QueryRowContext(t.Context(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	if s, _ := os.ReadFile("/proc/" + strconv.Itoa(backend) + "/status"); !bytes.Contains(s, []byte("Cpus_allowed_list:\t0\n")) {
		t.Fatalf("backend %d not pinned", backend)
	}
	db.Close()
	c.stop()
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory left behind: %v", err)
	}
	// pg_ctl stop -w returns once the pid file is gone; the process ends a
	// moment later.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still running", pid)
		}
	}
}

// The quick mode end to end on SQLite at one concurrency, shortened: every
// row that can run on this keyward measures something, without errors.
func TestRunQuickSQLite(t *testing.T) {
	needs(t, false)
	o := options{duration: 500 * time.Millisecond, limitTime: 300 * time.Millisecond, conns: []int{8}, backends: []string{"sqlite"},
		serverCore: 0, loadCore: 1, keepAutogroup: true} // a test leaves the machine's scheduling alone
	rep, err := run(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	measured := 0
	for _, r := range rep.Rows {
		switch {
		case strings.HasPrefix(r.NA, "failed"):
			t.Errorf("%s: %s", r.Scenario, r.NA)
		case r.NA != "":
		case r.RPS <= 0 || r.P50 <= 0 || r.Max < r.P99:
			t.Errorf("%s: %v/s, p50 %v, p99 %v, max %v", r.Scenario, r.RPS, r.P50, r.P99, r.Max)
		default:
			measured++
		}
		if r.Limit != "" && r.LimitRate <= 0 {
			t.Errorf("%s: limit %s not measured", r.Scenario, r.Limit)
		}
	}
	// password, refresh, jwks 200 and 304, introspection, Go signer, verify.
	if measured < 7 {
		t.Errorf("%d rows measured", measured)
	}
	if len(rep.Limits) != 6 {
		t.Errorf("limits %+v", rep.Limits)
	}
	for _, l := range rep.Limits {
		if l.Err != "" || l.Before <= 0 || l.After <= 0 {
			t.Errorf("limit %+v", l)
		}
	}
	if len(rep.Memory) < 2 { // the default server and the --signer go one, at least
		t.Errorf("memory of %d servers: %+v", len(rep.Memory), rep.Memory)
	}
	for _, m := range rep.Memory {
		if m.Idle <= 0 || m.Peak < m.Idle {
			t.Errorf("memory %+v", m)
		}
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	if n := strings.Count(md.String(), "\n| "); n != len(rep.Rows)+1 {
		t.Errorf("%d markdown rows for %d rows", n, len(rep.Rows))
	}
}

// TestWithoutAutogroup: the run turns autogroup scheduling off when it is
// on and back on after, leaves it alone when it is off or kept, and says
// so in the report.
func TestWithoutAutogroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sched_autogroup_enabled")
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	os.WriteFile(path, []byte("1\n"), 0o644)
	restore, note := withoutAutogroup(path, false)
	if got := read(); got != "0" || !strings.Contains(note, "turned off") {
		t.Fatalf("on: switch %q, note %q; want it off and said", got, note)
	}
	restore()
	if got := read(); got != "1" {
		t.Fatalf("after the run the switch is %q, want 1", got)
	}

	restore, note = withoutAutogroup(path, true)
	restore()
	if got := read(); got != "1" || !strings.Contains(note, "not comparable") {
		t.Fatalf("kept: switch %q, note %q; want it on and the rows flagged", got, note)
	}

	os.WriteFile(path, []byte("0\n"), 0o644)
	restore, note = withoutAutogroup(path, false)
	restore()
	if got := read(); got != "0" || note != "" {
		t.Fatalf("off already: switch %q, note %q; want it untouched and nothing said", got, note)
	}
	if _, note := withoutAutogroup(filepath.Join(t.TempDir(), "missing"), false); note != "" {
		t.Fatalf("no switch: note %q", note)
	}
}
