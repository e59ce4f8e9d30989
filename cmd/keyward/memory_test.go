package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// idleAnonCeiling bounds the anonymous memory (heap, stacks: what the
// process itself allocated, not the mapped binary) of a server that has
// started and serves nothing yet (issue 18: idle RSS under 30 MiB; the
// binary's mapped pages, about 20 MiB unstripped, come on top and are
// shared).
const idleAnonCeiling = 20 << 20

// TestIdleMemory starts a real server (a build without -race) and checks
// that what starting took (the hasher's calibration runs argon2id at the
// ceiling three times, about 60 MiB) was handed back to the system.
func TestIdleMemory(t *testing.T) {
	dir := t.TempDir()
	p := startBuiltProcess(t, "--database", "sqlite:"+dir+"/keyward.db", "--key-encryption-key-file", writeKEK(t, dir))
	anon, rss := procMemory(t, p.Pid())
	t.Logf("idle: VmRSS %.1f MiB, RssAnon %.1f MiB", float64(rss)/(1<<20), float64(anon)/(1<<20))
	if anon > idleAnonCeiling {
		t.Errorf("idle anonymous memory %.1f MiB, want at most %d MiB", float64(anon)/(1<<20), idleAnonCeiling>>20)
	}
}

// procMemory reads RssAnon and VmRSS of pid, in bytes.
func procMemory(t *testing.T, pid int) (anon, rss int64) {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "RssAnon" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			t.Fatalf("/proc status %s: %v", k, err)
		}
		if k == "RssAnon" {
			anon = kb << 10
		} else {
			rss = kb << 10
		}
	}
	return anon, rss
}
