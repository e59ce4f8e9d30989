package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/storage"
)

// writePepper writes content to a 0600 file in dir and returns its path.
func writePepper(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// storedHash is the password hash stored for user id in the database at dsn.
func storedHash(t *testing.T, dsn, id string) string {
	t.Helper()
	db, err := storage.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.User(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.PasswordHash
}

var pepperedHash = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1,keyid=[A-Za-z0-9+/]{8}\$`)

// TestPasswordPepperThroughServe is PW-04 on a real serve: a user created by
// "users create --password-pepper-file" signs in by password grant (200) on a
// serve given the same pepper by KEYWARD_PASSWORD_PEPPER_FILE; the stored hash
// is marked keyid= and does not verify without the pepper (a database dump
// alone cannot check a guess). A user hashed before the pepper signs in too,
// and that login rewrites the hash peppered. A serve without the pepper
// refuses the peppered user (invalid_grant, logged as a hash it cannot
// check), never a token, and logs nothing of the pepper.
func TestPasswordPepperThroughServe(t *testing.T) {
	t.Chdir(t.TempDir())
	const dsn = "sqlite:keyward.db"
	const bobPassword = "tawny owl at dusk, twice"
	key := bytes.Repeat([]byte{0x42}, 8)
	key = append(key, []byte("pepper for the serve test, 32+ b")...)
	file := writePepper(t, ".", "pepper", []byte(base64.StdEncoding.EncodeToString(key)+"\n"))

	c := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", "app",
		"--grant", "password", "--scope", "openid", "--output", "json"))
	secret, _ := c["client_secret"].(string)
	bobID := createLoginUser(t, dsn, "bob", bobPassword) // before the pepper
	u := decode[map[string]any](t, mustRun(t, dsn, alicePassword+"\n", "users", "create", "--username", "alice",
		"--password-stdin", "--password-pepper-file", file, "--output", "json"))
	aliceID, _ := u["id"].(string)

	aliceHash := storedHash(t, dsn, aliceID)
	if !pepperedHash.MatchString(aliceHash) {
		t.Fatalf("alice's stored hash %q is not peppered", aliceHash)
	}
	if bobHash := storedHash(t, dsn, bobID); strings.Contains(bobHash, "keyid=") {
		t.Fatalf("bob's hash %q is peppered though made without the pepper", bobHash)
	}
	// The dump: the stored string and the right password, no key.
	plain, err := password.NewHasher(password.DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := plain.Verify(t.Context(), alicePassword, aliceHash); ok || !errors.Is(err, password.ErrWrongPepper) {
		t.Fatalf("alice's hash without the pepper: Verify = %v, %v; want false, ErrWrongPepper", ok, err)
	}
	keyed, err := password.NewHasher(password.DefaultParams(), password.WithPepper(key))
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := keyed.Verify(t.Context(), alicePassword, aliceHash); !ok || err != nil {
		t.Fatalf("alice's hash with the pepper: Verify = %v, %v", ok, err)
	}

	login := func(s *server, user, pw string) tokenReply {
		t.Helper()
		return send(t, http.DefaultClient, http.MethodPost, s.URL+"/oauth2/token",
			http.Header{"Authorization": {basicAuth("app", secret)}},
			url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {"openid"}})
	}

	t.Setenv("KEYWARD_PASSWORD_PEPPER_FILE", file)
	s := startServe(t)
	checkIssued(t, "alice with the pepper", login(s, "alice", alicePassword))
	checkTokenErrorE1(t, "alice, wrong password", login(s, "alice", "wrong horse battery staple"), 400, "invalid_grant")
	checkIssued(t, "bob, hashed before the pepper", login(s, "bob", bobPassword))
	s.stop(t)
	if bobHash := storedHash(t, dsn, bobID); !pepperedHash.MatchString(bobHash) {
		t.Errorf("bob's hash after his login %q is not peppered", bobHash)
	} else if ok, _, err := keyed.Verify(t.Context(), bobPassword, bobHash); !ok || err != nil {
		t.Errorf("bob's rehash with the pepper: Verify = %v, %v", ok, err)
	}

	t.Setenv("KEYWARD_PASSWORD_PEPPER_FILE", "")
	s = startServe(t)
	// More attempts than the free failures: a hash the server cannot check
	// is no guess, so none of them counts toward the lockout.
	for range guard.DefaultPolicy().FreeFailures + 3 {
		checkTokenErrorE1(t, "alice on a serve without the pepper", login(s, "alice", alicePassword), 400, "invalid_grant")
	}
	s.stop(t)
	logs := s.Log.String()
	t.Setenv("KEYWARD_PASSWORD_PEPPER_FILE", file)
	s = startServe(t)
	checkIssued(t, "alice once the pepper is back, without waiting", login(s, "alice", alicePassword))
	s.stop(t)
	if !strings.Contains(logs, "password hash cannot be checked") || !strings.Contains(logs, "pepper") {
		t.Errorf("serve without the pepper did not log the hash it cannot check:\n%s", logs)
	}
	for _, secret := range []string{base64.StdEncoding.EncodeToString(key), string(key), alicePassword} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a secret (%d characters)", len(secret))
		}
	}
}

// TestPasswordPepperFileFormats: the pepper file holds 32 or more bytes, raw or
// as base64 (either alphabet, padded or not, a trailing newline ignored); a
// user created with one form verifies with the key itself.
func TestPasswordPepperFileFormats(t *testing.T) {
	t.Chdir(t.TempDir())
	const dsn = "sqlite:keyward.db"
	key := []byte("\xff\xfe the raw key holds >32 bytes \x00\x01 and ends ~~~?")
	tests := []struct {
		name    string
		content []byte
	}{
		{"raw", key},
		{"base64", []byte(base64.StdEncoding.EncodeToString(key) + "\n")},
		{"unpadded base64url", []byte(base64.RawURLEncoding.EncodeToString(key))},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readPepperFile(writePepper(t, t.TempDir(), "pepper", tt.content))
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("readPepperFile = %q, %v; want the key", got, err)
			}
			name := "user" + string(rune('a'+i))
			u := decode[map[string]any](t, mustRun(t, dsn, alicePassword+"\n", "users", "create", "--username", name,
				"--password-stdin", "--password-pepper-file", writePepper(t, t.TempDir(), "pepper", tt.content), "--output", "json"))
			id, _ := u["id"].(string)
			stored := storedHash(t, dsn, id)
			h, err := password.NewHasher(password.DefaultParams(), password.WithPepper(key))
			if err != nil {
				t.Fatal(err)
			}
			if ok, _, err := h.Verify(t.Context(), alicePassword, stored); !ok || err != nil {
				t.Errorf("Verify with the key = %v, %v", ok, err)
			}
		})
	}
}

// TestPasswordPepperFileRefused: serve, users create and users set-password
// refuse a pepper file that is missing, empty, shorter than 32 bytes (raw or
// decoded) or too large, given by flag or by KEYWARD_PASSWORD_PEPPER_FILE,
// and name the flag; nothing is written.
func TestPasswordPepperFileRefused(t *testing.T) {
	t.Chdir(t.TempDir())
	const dsn = "sqlite:keyward.db"
	dir := t.TempDir()
	uid := createLoginUser(t, dsn, "alice", alicePassword)
	bad := []struct {
		name string
		file string
	}{
		{"missing", filepath.Join(dir, "none")},
		{"empty", writePepper(t, dir, "empty", nil)},
		{"whitespace", writePepper(t, dir, "blank", []byte(" \n\n"))},
		{"31 raw bytes", writePepper(t, dir, "raw31", bytes.Repeat([]byte{0xee}, 31))},
		{"base64 of 31 bytes", writePepper(t, dir, "b64-31", []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 31))+"\n"))},
		{"too large", writePepper(t, dir, "large", bytes.Repeat([]byte{0xee}, maxPepperFile+1))},
		{"a directory", dir},
	}
	commands := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"serve", "", []string{"serve", "--addr", "127.0.0.1:0"}},
		{"users create", alicePassword + "\n", []string{"users", "create", "--username", "bob", "--password-stdin"}},
		{"users set-password", "another long passphrase here\n", []string{"users", "set-password", uid, "--password-stdin"}},
	}
	for _, b := range bad {
		for _, c := range commands {
			t.Run(b.name+"/"+c.name, func(t *testing.T) {
				_, err := run(t, dsn, c.stdin, append(c.args, "--password-pepper-file", b.file)...)
				if err == nil || !strings.Contains(err.Error(), "--password-pepper-file") {
					t.Errorf("flag: err = %v, want one naming --password-pepper-file", err)
				}
				t.Setenv("KEYWARD_PASSWORD_PEPPER_FILE", b.file)
				_, err = run(t, dsn, c.stdin, c.args...)
				if err == nil || !strings.Contains(err.Error(), "--password-pepper-file") {
					t.Errorf("environment: err = %v, want one naming --password-pepper-file", err)
				}
			})
		}
	}
	db, err := storage.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.UserByUsername(t.Context(), "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("bob was created with a bad pepper file: %v", err)
	}
	if u, err := db.User(t.Context(), uid); err != nil || strings.Contains(u.PasswordHash, "keyid=") {
		t.Errorf("alice's password was set with a bad pepper file: %v", err)
	}
}
