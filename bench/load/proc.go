package load

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss, hwm int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc status: unexpected %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc status: %s: %w", k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("/proc status: no VmRSS/VmHWM (a kernel thread or an exited process?)")
	}
	return rss, hwm, nil
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
