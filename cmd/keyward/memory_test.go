package main

import (
	"testing"

	"github.com/keyward/keyward/bench/load"
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
	m, err := load.ProcMemory(p.Pid(), "RssAnon", "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	anon, rss := m["RssAnon"], m["VmRSS"]
	t.Logf("idle: VmRSS %.1f MiB, RssAnon %.1f MiB", float64(rss)/(1<<20), float64(anon)/(1<<20))
	if anon > idleAnonCeiling {
		t.Errorf("idle anonymous memory %.1f MiB, want at most %d MiB", float64(anon)/(1<<20), idleAnonCeiling>>20)
	}
}
