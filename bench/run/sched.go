package main

import (
	"fmt"
	"os"
	"strings"
)

// autogroupSwitch is the kernel's switch for autogroup scheduling.
const autogroupSwitch = "/proc/sys/kernel/sched_autogroup_enabled"

// withoutAutogroup turns the kernel's autogroup scheduling off for the run
// when it is on, unless keep, and returns what turns it back on and a note
// for the report ("" when there is nothing to say).
//
// With autogroup on, the kernel shares a core equally among sessions, and
// every PostgreSQL backend calls setsid: each of the server's pooled
// connections weighs as much as the whole keyward process, and single
// statements waited 0.4-3 s for the core (a parse, an audit INSERT). A
// service under systemd or in a container runs in a cgroup of its own,
// where autogroup does not apply; a benchmark started from a shell runs in
// the root group, where it does. Measured with it off: no PostgreSQL
// statement over 100 ms and no request over 60 ms where, with it on,
// requests took up to 1.45 s (docs/performance.md).
func withoutAutogroup(path string, keep bool) (restore func(), note string) {
	restore = func() {}
	b, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		return restore, "" // not this kernel's, or off already
	}
	const why = "every PostgreSQL backend gets a scheduling group of its own, as large as keyward's, so PostgreSQL's rows are not comparable"
	if keep {
		return restore, "autogroup scheduling left on (-keep-autogroup): " + why
	}
	if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
		return restore, fmt.Sprintf("autogroup scheduling is on and could not be turned off (%v; run as root, or set %s to 0): %s", err, path, why)
	}
	logf("turned autogroup scheduling off for the run (%s; back on at the end)", path)
	return func() {
		if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
			logf("could not turn autogroup scheduling back on: %v", err)
		}
	}, "autogroup scheduling was turned off for the run and back on after it"
}
