package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestHumanOutput runs every command of the real command tree that prints
// something, with the default (table) output, on each backend, and compares
// the transcript with testdata/output.golden, the parts that change from
// run to run masked (see maskOutput). Run `go test -run TestHumanOutput
// -update ./cmd/keyward/` after changing what a command prints, and read
// the diff. No line may hold an empty field ("active key ,").
func TestHumanOutput(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		kek := writeKEK(t, dir)
		newKEK := filepath.Join(dir, "new.kek")
		if err := os.WriteFile(newKEK, []byte(keys.EncodeKEK(keys.NewKEK())), 0o600); err != nil {
			t.Fatal(err)
		}
		var transcript strings.Builder
		sh := func(stdin string, args ...string) {
			t.Helper()
			out, err := run(t, dsn, stdin, args...)
			if err != nil {
				t.Fatalf("keyward %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			shown := make([]string, len(args))
			for i, a := range args {
				shown[i] = a
				if strings.ContainsAny(a, " '") {
					shown[i] = strconv.Quote(a)
				}
			}
			fmt.Fprintf(&transcript, "$ keyward %s\n%s\n", strings.Join(shown, " "), out)
		}
		kid := func(state string) string {
			t.Helper()
			ks, err := keys.List(t.Context(), storagetest.Open(t, dsn))
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range ks {
				if k.State == state {
					return k.KID
				}
			}
			t.Fatalf("no %s key in %+v", state, ks)
			return ""
		}

		// serve prints only the --demo credentials; its log goes to
		// standard error.
		for range 2 {
			s := startServe(t, "--demo", "--database", dsn, "--key-encryption-key-file", kek)
			s.stop(t)
			fmt.Fprintf(&transcript, "$ keyward serve --demo\n%s\n", s.Out.String())
		}

		sh("", "version")
		sh("", "migrate")

		sh(alicePassword+"\n", "users", "create", "--username", "alice", "--email", "alice@example.com", "--email-verified", "--password-stdin")
		sh(alicePassword+"\n", "users", "create", "--username", "bob", "--password-stdin")
		sh("", "users", "list")
		sh("", "users", "get", "alice")
		sh("", "users", "disable", "alice")
		sh("", "users", "enable", "alice")
		sh("another long passphrase here\n", "users", "set-password", "alice", "--password-stdin")
		sh("", "users", "unlock", "alice")
		sh("", "users", "delete", "bob")

		sh("", "clients", "create", "--id", "svc", "--name", "Billing service", "--grant", "client_credentials",
			"--scope", "api:read api:write", "--audience", "api")
		sh("", "clients", "create", "--id", "spa", "--public", "--grant", "refresh_token", "--scope", "read")
		sh("", "clients", "list")
		sh("", "clients", "get", "svc")
		sh("", "clients", "rotate-secret", "svc")
		sh("", "clients", "disable", "svc")
		sh("", "clients", "enable", "svc")
		sh("", "clients", "set-introspection", "svc", "--introspect-audience", "api")
		sh("", "clients", "delete", "spa")

		kekFlag := "--key-encryption-key-file=" + kek
		sh("", "keys", "list")
		// The next key is seconds old: the rotation is scheduled.
		sh("", "keys", "rotate", kekFlag)
		sh("", "keys", "rotate", "--force", kekFlag)
		sh("", "keys", "revoke", "--kid="+kid(storage.KeyNext), kekFlag)
		sh("", "keys", "revoke", "--kid="+kid(storage.KeyActive), kekFlag)
		sh("", "keys", "list")
		// Age the next key past max-age + margin: the rotation happens now.
		sql := storagetest.Open(t, dsn)
		if _, err := sql.SQL().ExecContext(t.Context(), `UPDATE signing_keys SET created_at = created_at - 3600000 WHERE state = 'next'`); err != nil {
			t.Fatal(err)
		}
		sh("", "keys", "rotate", kekFlag)
		// A hand-emptied table: the rotation makes a key set.
		if _, err := sql.SQL().ExecContext(t.Context(), `DELETE FROM signing_keys`); err != nil {
			t.Fatal(err)
		}
		sh("", "keys", "rotate", kekFlag)
		sh("", "keys", "list")
		sh("", "keys", "rewrap", kekFlag, "--new-key-encryption-key-file", newKEK)

		sh("", "audit", "list")
		sh("", "audit", "list", "--type", "key_revoked")

		got := maskOutput(transcript.String(), dir)
		for i, line := range strings.Split(got, "\n") {
			if emptyField.MatchString(line) {
				t.Errorf("line %d has an empty field: %q", i+1, line)
			}
		}
		golden(t, filepath.Join("testdata", "output.golden"), got)
	})
}

// emptyField finds a sentence with a value left out: "active key ,",
// "(was )", "key ;".
var emptyField = regexp.MustCompile(`\b(key|keys|was|user|client|secret|version)( [,;)]|[,;]$| $)|\(\s*\)`)

var (
	rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	inDur   = regexp.MustCompile(`\(in [0-9hms.]+\)`)
	schema  = regexp.MustCompile(`\((sqlite|postgres), version \d+\)`)
	demoPW  = regexp.MustCompile(`(?m)^  password: +(\S+)$`)
	word    = regexp.MustCompile(`[A-Za-z0-9_-]+`)
	hexID   = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// maskOutput replaces what changes from run to run: times, durations, the
// dialect and schema version, the temporary directory, and random values,
// each distinct one by a numbered placeholder (<kid-1>, <id-2>, <secret-1>,
// <password>), so the transcript still shows which output names which.
// Placeholders are shorter than what they stand for, so masked table
// columns no longer line up.
func maskOutput(s, dir string) string {
	s = strings.ReplaceAll(s, dir, "<dir>")
	for _, m := range demoPW.FindAllStringSubmatch(s, -1) {
		s = strings.ReplaceAll(s, m[1], "<password>")
	}
	s = rfc3339.ReplaceAllString(s, "<time>")
	s = inDur.ReplaceAllString(s, "(in <duration>)")
	s = schema.ReplaceAllString(s, "(<dialect>, version <n>)")
	seen := map[string]string{}
	count := map[string]int{}
	return word.ReplaceAllStringFunc(s, func(w string) string {
		kind := ""
		switch {
		case strings.HasPrefix(w, "kwcs_") && len(w) == 48:
			kind = "secret"
		case len(w) == 43: // an RFC 7638 thumbprint: 256 bits, base64url
			kind = "kid"
		case hexID.MatchString(w):
			kind = "id"
		default:
			return w
		}
		if p, ok := seen[w]; ok {
			return p
		}
		count[kind]++
		seen[w] = "<" + kind + "-" + strconv.Itoa(count[kind]) + ">"
		return seen[w]
	})
}

// golden compares got with the file, or with -update writes it.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("output differs from %s at line %d:\ngot  %q\nwant %q\n(run with -update and read the diff if the change is meant)\n\nwhole output:\n%s", file, i+1, g, w, got)
			}
		}
	}
}
