package load

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseOpenSSLSpeed(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name              string
		out               string
		wantSign, wantVfy float64
		wantErr           bool
	}{
		// Both captured from OpenSSL 3.0.19 on this machine.
		{"-elapsed -multi 1 (what bench/run runs)", read("openssl-speed-multi.txt"), 1536, 27261, false},
		{"single process, CPU time", read("openssl-speed-single.txt"), 5119.1, 84514.9, false},
		{"only the +F2 line", "Forked child 0\nGot: +F2:2:2048:3142.000000:35771.000000 from 0\n", 3142, 35771, false},
		{"table row wins over +F2", "Got: +F2:2:2048:1.0:2.0 from 0\nrsa 2048 bits 0.000318s 0.000028s   3142.0  35771.0\n", 3142, 35771, false},
		{"another key size only", "rsa 4096 bits 0.002s 0.0001s 500.0 9000.0\n+F2:2:4096:500.0:9000.0\n", 0, 0, true},
		{"garbled rate", "rsa 2048 bits 0.000318s 0.000028s   fast  35771.0\n", 0, 0, true},
		{"zero rate", "rsa 2048 bits 0s 0s 0.0 0.0\n", 0, 0, true},
		{"error output", "speed: Unknown algorithm rsa2048\n", 0, 0, true},
		{"empty", "", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sign, vfy, err := ParseOpenSSLSpeed([]byte(tt.out))
			if (err != nil) != tt.wantErr || sign != tt.wantSign || vfy != tt.wantVfy {
				t.Fatalf("ParseOpenSSLSpeed = %v, %v, %v; want %v, %v, error %v", sign, vfy, err, tt.wantSign, tt.wantVfy, tt.wantErr)
			}
		})
	}
}

func TestPinnedCommandLines(t *testing.T) {
	tests := []struct {
		name string
		got  []string
		want string
	}{
		{"pinned", Pinned(0, "/tmp/keyward", "serve", "--addr", "127.0.0.1:1"), "taskset -c 0 /tmp/keyward serve --addr 127.0.0.1:1"},
		{"other core", Pinned(1, "loadgen"), "taskset -c 1 loadgen"},
		{"openssl speed", OpenSSLSpeedArgs(0, 3), "taskset -c 0 openssl speed -elapsed -seconds 3 -multi 1 rsa2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(tt.got, " "); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// The pin holds: a pinned process, and the process it starts, may run on
// that core only.
func TestPinnedRunsOnOneCore(t *testing.T) {
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("no taskset")
	}
	argv := Pinned(0, "sh", "-c", "grep Cpus_allowed_list /proc/self/status")
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(out)); !slices.Equal(f, []string{"Cpus_allowed_list:", "0"}) {
		t.Fatalf("child of a pinned process: %q", out)
	}
}

// openssl speed as bench/run runs it, on this machine: its output parses.
func TestOpenSSLSpeedHere(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the machine")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("no openssl")
	}
	argv := OpenSSLSpeedArgs(0, 1)
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if sign, vfy, err := ParseOpenSSLSpeed(out); err != nil || sign <= 0 || vfy <= sign {
		t.Fatalf("sign %v, verify %v, %v", sign, vfy, err)
	}
}

func TestMeasureNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the machine")
	}
	for name := range Measures {
		if name == "argon2id" || name == "rsa-sign" {
			continue // TestMeasureLimits
		}
		if r, err := MeasureNamed(name, 100*time.Millisecond); err != nil || r <= 0 {
			t.Fatalf("%s: %v, %v", name, r, err)
		}
	}
	if _, err := MeasureNamed("md5", 1); err == nil {
		t.Fatal("unknown measure accepted")
	}
}
