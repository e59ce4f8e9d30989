package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage/storagetest"
)

// writeKEKFile writes kek, base64, into a file of its own and returns the
// path.
func writeKEKFile(t *testing.T, kek []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "given.kek")
	if err := os.WriteFile(file, []byte(keys.EncodeKEK(kek)), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// mode is the permission bits of path.
func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestServeKeepsSecretFilesPrivate is issue 12 finding 10 on a real
// keyward serve process given only --database sqlite:DIR/keyward.db, run
// from another directory: the database and its -wal and -shm files are
// 0600, and the generated key-encryption key is DIR/keyward.kek (0600),
// beside the database, not in the working directory.
func TestServeKeepsSecretFilesPrivate(t *testing.T) {
	data, work := t.TempDir(), t.TempDir()
	t.Chdir(work)
	db := filepath.Join(data, "keyward.db")
	p := startProcess(t, nil, "--database", "sqlite:"+db, "--demo")
	secret, _ := demoCredentials(t, p)
	demoClientToken(t, p, secret) // a write or two

	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", filepath.Base(f), m)
		}
	}
	kek := filepath.Join(data, "keyward.kek")
	if m := mode(t, kek); m != 0o600 {
		t.Errorf("keyward.kek has mode %04o, want 0600", m)
	}
	if _, err := os.Stat(filepath.Join(work, "keyward.kek")); err == nil {
		t.Error("keyward.kek was written into the working directory")
	}
	if !strings.Contains(p.Log.String(), `"file":"`+kek+`"`) || !strings.Contains(p.Log.String(), "production must supply its own") {
		t.Errorf("no warning naming the generated key-encryption key %s:\n%s", kek, p.Log.String())
	}
	if strings.Contains(p.Log.String(), "chmod 600") {
		t.Errorf("a warning about files Keyward created itself:\n%s", p.Log.String())
	}
}

// TestServeFindsTheOldKEK: a deployment upgraded from a version that put
// keyward.kek in the working directory keeps using it, with a warning to
// move it beside the database, instead of generating a key its stored
// signing keys were not encrypted with. An existing database file keeps its
// mode, with a warning when other users can read it.
func TestServeFindsTheOldKEK(t *testing.T) {
	data, work := t.TempDir(), t.TempDir()
	t.Chdir(work)
	kek := keys.NewKEK()
	if err := os.WriteFile("keyward.kek", []byte(keys.EncodeKEK(kek)), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(data, "keyward.db")
	if err := os.WriteFile(db, nil, 0o644); err != nil { // as the older version left it
		t.Fatal(err)
	}
	if _, err := keys.NewManager(t.Context(), storagetest.Open(t, "sqlite:"+db), kek, keys.Policy{}, nil, time.Now); err != nil {
		t.Fatal(err)
	}

	s := startServe(t, "--database", "sqlite:"+db)
	if code, _ := get(t, s.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz %d", code)
	}
	log := s.Log.String()
	if !strings.Contains(log, "from the working directory") || !strings.Contains(log, `"move_to":"`+filepath.Join(data, "keyward.kek")+`"`) {
		t.Errorf("no warning to move keyward.kek beside the database:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(data, "keyward.kek")); err == nil {
		t.Error("a second key-encryption key was generated beside the database")
	}
	if !strings.Contains(log, "chmod 600") || !strings.Contains(log, `"mode":"0644"`) {
		t.Errorf("no warning about the database file open to others:\n%s", log)
	}
	if m := mode(t, db); m != 0o644 {
		t.Errorf("the existing database file's mode changed to %04o", m)
	}
}

// TestKEKNeverOnTheCommandLine: the key-encryption key is taken from
// KEYWARD_KEY_ENCRYPTION_KEY or a file, never from a flag, whose value
// every local user could read in /proc/PID/cmdline; --help says so.
func TestKEKNeverOnTheCommandLine(t *testing.T) {
	t.Chdir(t.TempDir())
	kek := keys.EncodeKEK(keys.NewKEK())

	// serve's issuer is one it refuses, so that a serve that took the flag
	// ends at once instead of serving.
	badIssuer := []string{"--addr", "127.0.0.1:0", "--issuer", "http://id.example.com"}
	for _, args := range [][]string{
		append([]string{"serve", "--key-encryption-key", kek}, badIssuer...),
		append([]string{"serve", "--key-encryption-key=" + kek}, badIssuer...),
		{"keys", "list", "--key-encryption-key", kek},
		{"keys", "rewrap", "--key-encryption-key", kek, "--new-key-encryption-key-file", writeKEKFile(t, keys.NewKEK())},
	} {
		out, err := run(t, "sqlite:keyward.db", "", args...)
		if err == nil || !strings.Contains(err.Error(), "KEYWARD_KEY_ENCRYPTION_KEY") || !strings.Contains(err.Error(), "/proc") {
			t.Errorf("keyward %s: %v, want a refusal naming KEYWARD_KEY_ENCRYPTION_KEY", args[0]+" "+args[1], err)
		}
		if err != nil && strings.Contains(err.Error()+out, kek) {
			t.Errorf("the refusal repeats the key")
		}
	}
	if _, err := os.Stat("keyward.db"); err == nil {
		t.Error("a refused command opened the database")
	}

	for _, cmd := range [][]string{{"serve", "--help"}, {"keys", "--help"}} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(cmd)
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		if strings.Contains(help, "--key-encryption-key string") || !strings.Contains(help, "--key-encryption-key-file") ||
			!strings.Contains(help, "KEYWARD_KEY_ENCRYPTION_KEY") || !strings.Contains(help, "process list") {
			t.Errorf("keyward %s does not say the key comes from KEYWARD_KEY_ENCRYPTION_KEY or a file:\n%s", strings.Join(cmd, " "), help)
		}
	}

	t.Run("environment", func(t *testing.T) {
		dir := t.TempDir()
		t.Setenv("KEYWARD_KEY_ENCRYPTION_KEY", kek)
		s := startServe(t, "--database", "sqlite:"+filepath.Join(dir, "keyward.db"))
		if code, _ := get(t, s.URL+"/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz %d", code)
		}
		if _, err := os.Stat(filepath.Join(dir, "keyward.kek")); err == nil {
			t.Error("a key-encryption key was generated although KEYWARD_KEY_ENCRYPTION_KEY is set")
		}
		if strings.Contains(s.Log.String(), kek) {
			t.Error("the key reached the log")
		}
	})

	tests := []struct {
		name    string
		env     string
		args    []string
		wantErr string
	}{
		{"environment not base64", "not base64!", nil, "KEYWARD_KEY_ENCRYPTION_KEY: key-encryption key is not valid base64"},
		{"environment too short", "bm90IDMyIGJ5dGVz", nil, "KEYWARD_KEY_ENCRYPTION_KEY: key-encryption key must be 32 bytes"},
		{"environment and file", kek, []string{"--key-encryption-key-file", writeKEKFile(t, keys.NewKEK())}, "set only one of KEYWARD_KEY_ENCRYPTION_KEY and --key-encryption-key-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KEYWARD_KEY_ENCRYPTION_KEY", tt.env)
			_, err := run(t, storagetest.SQLiteDSN(t), "", append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), tt.env) {
				t.Error("the error repeats the key")
			}
		})
	}
}
