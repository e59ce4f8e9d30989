package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestPasswordHashCeiling: --password-hash-ceiling sets the costliest stored
// hash a server checks (TE-21). Under m=19456,t=2,bcrypt=10 a user whose
// imported bcrypt hash has cost 11 cannot sign in (the log says why) and one
// with cost 10 can; a malformed value is refused before anything runs.
func TestPasswordHashCeiling(t *testing.T) {
	dsn := storagetest.Backends[0].DSN(t)
	for _, v := range []string{"m=19456,t=2", "m=19456,t=2,bcrypt=3", "bcrypt=10,m=19456,t=2"} {
		if _, err := run(t, dsn, "", "clients", "list", "--password-hash-ceiling", v); err == nil || !strings.Contains(err.Error(), "--password-hash-ceiling") {
			t.Errorf("--password-hash-ceiling %s: %v", v, err)
		}
	}
	secret := createLoginClient(t, dsn)
	db := storagetest.Open(t, dsn)
	for name, cost := range map[string]int{"bea": 10, "cora": 11} {
		h, err := bcrypt.GenerateFromPassword([]byte(alicePassword), cost)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.CreateUser(context.Background(), &storage.User{Username: name, PasswordHash: string(h)}); err != nil {
			t.Fatal(err)
		}
	}
	p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", writeKEK(t, t.TempDir()),
		"--password-hash-ceiling", "m=19456,t=2,bcrypt=10")
	c := newPeerClients(t).from("127.0.6.1")
	if r := postPasswordGrant(t, c, p, secret, "bea", alicePassword, ""); r.status != http.StatusOK {
		t.Errorf("bcrypt cost 10 under the ceiling: %s", r)
	}
	r := postPasswordGrant(t, c, p, secret, "cora", alicePassword, "")
	checkTokenErrorE1(t, "bcrypt cost 11 above the ceiling", r, http.StatusBadRequest, "invalid_grant")
	// The log is copied from the process's standard error by a goroutine,
	// so the line may arrive after the answer: wait for it.
	testsupport.WaitFor(t, "a log line saying the hash is above the ceiling", p.Log, regexp.MustCompile(`above the ceiling`), nil, 10*time.Second)
}
