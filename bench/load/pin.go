package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Pinned returns the command line that runs argv on one CPU core only:
// taskset -c CORE argv... Every thread and child the command starts
// inherits the pin (a PostgreSQL postmaster's backends, Go's threads), and
// Go sizes GOMAXPROCS from it, so a pinned Go process runs one P.
func Pinned(core int, argv ...string) []string {
	return append([]string{"taskset", "-c", strconv.Itoa(core)}, argv...)
}

// OpenSSLSpeedArgs is the command that measures OpenSSL's RSA-2048 sign and
// verify rates on core for seconds, one process (-multi 1 prints a
// machine-readable +F2 line beside the table). -elapsed divides by wall-clock
// time, as the Go measures do: without it OpenSSL divides by its own CPU
// time, which on a shared core overstates what the core delivers.
func OpenSSLSpeedArgs(core, seconds int) []string {
	return Pinned(core, "openssl", "speed", "-elapsed", "-seconds", strconv.Itoa(seconds), "-multi", "1", "rsa2048")
}

// ParseOpenSSLSpeed reads the RSA-2048 sign/s and verify/s from the output
// of `openssl speed rsa2048` (OpenSSL 3), from its table row
//
//	rsa 2048 bits 0.000318s 0.000028s   3142.0  35771.0
//
// or, failing that, from the "+F2:N:2048:SIGN:VERIFY" line that -multi
// prints.
func ParseOpenSSLSpeed(out []byte) (sign, verify float64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	var f2 []string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if f := strings.Fields(line); len(f) == 7 && f[0] == "rsa" && f[1] == "2048" && f[2] == "bits" {
			sign, err1 := strconv.ParseFloat(f[5], 64)
			verify, err2 := strconv.ParseFloat(f[6], 64)
			if err := errors.Join(err1, err2); err != nil {
				return 0, 0, fmt.Errorf("openssl speed: row %q: %w", line, err)
			}
			return positive(sign, verify, line)
		}
		if rest, ok := strings.CutPrefix(line, "Got: "); ok {
			line = rest
		}
		if strings.HasPrefix(line, "+F2:") {
			if p := strings.Split(strings.Fields(line)[0], ":"); len(p) == 5 && p[2] == "2048" {
				f2 = p
			}
		}
	}
	if f2 != nil {
		sign, err1 := strconv.ParseFloat(f2[3], 64)
		verify, err2 := strconv.ParseFloat(f2[4], 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, 0, fmt.Errorf("openssl speed: %q: %w", strings.Join(f2, ":"), err)
		}
		return positive(sign, verify, strings.Join(f2, ":"))
	}
	return 0, 0, errors.New("openssl speed: no rsa 2048 bits row in the output")
}

func positive(sign, verify float64, line string) (float64, float64, error) {
	if sign <= 0 || verify <= 0 {
		return 0, 0, fmt.Errorf("openssl speed: non-positive rate in %q", line)
	}
	return sign, verify, nil
}
