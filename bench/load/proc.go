package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Memory is what a Sampler saw of a process, in bytes.
type Memory struct {
	RSSBefore int64 `json:"rss_before"` // VmRSS when sampling started
	RSSPeak   int64 `json:"rss_peak"`   // highest VmRSS sampled
	HWM       int64 `json:"hwm"`        // VmHWM (the kernel's own peak RSS) at the end
	Samples   int   `json:"samples"`
}

// ProcStatus reads VmRSS and VmHWM of pid from /proc/PID/status, in bytes.
func ProcStatus(pid int) (rss, hwm int64, err error) {
	m, err := ProcMemory(pid, "VmRSS", "VmHWM")
	return m["VmRSS"], m["VmHWM"], err
}

// ProcMemory reads the named memory lines (VmRSS, VmHWM, RssAnon, ...) of
// pid from /proc/PID/status, in bytes; every one must be there.
func ProcMemory(pid int, keys ...string) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return parseMemory(b, keys...)
}

func parseStatus(b []byte) (rss, hwm int64, err error) {
	m, err := parseMemory(b, "VmRSS", "VmHWM")
	return m["VmRSS"], m["VmHWM"], err
}

func parseMemory(b []byte, keys ...string) (map[string]int64, error) {
	m := make(map[string]int64, len(keys))
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(keys, k) {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return nil, fmt.Errorf("/proc status: unexpected %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc status: %s: %w", k, err)
		}
		m[k] = n << 10
	}
	if len(m) != len(keys) {
		return nil, fmt.Errorf("/proc status: no %s (a kernel thread or an exited process?)", strings.Join(keys, "/"))
	}
	return m, nil
}

// Sampler polls a process's memory until stopped.
type Sampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	m    Memory
}

// StartSampler reads pid's memory now and then every interval.
func StartSampler(pid int, interval time.Duration) (*Sampler, error) {
	rss, hwm, err := ProcStatus(pid)
	if err != nil {
		return nil, err
	}
	s := &Sampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{}),
		m: Memory{RSSBefore: rss, RSSPeak: rss, HWM: hwm, Samples: 1}}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s, nil
}

func (s *Sampler) sample() {
	rss, hwm, err := ProcStatus(s.pid)
	if err != nil {
		return // the process is gone; keep what was seen
	}
	s.mu.Lock()
	s.m.RSSPeak = max(s.m.RSSPeak, rss)
	s.m.HWM = max(s.m.HWM, hwm)
	s.m.Samples++
	s.mu.Unlock()
}

// Stop takes a last sample and returns what was seen.
func (s *Sampler) Stop() Memory {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m
}

// MiB formats bytes as mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
