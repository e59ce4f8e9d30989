package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// run executes the real command tree with args against dsn and returns
// what it printed.
func run(t *testing.T, dsn, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	// The command's loggers (each a handler of its own) and the mail
	// worker's write the log from several goroutines: os.Stderr takes
	// that, a bytes.Buffer does not.
	var out, logs testsupport.SyncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&logs)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"--database", dsn}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

func mustRun(t *testing.T, dsn, stdin string, args ...string) string {
	t.Helper()
	out, err := run(t, dsn, stdin, args...)
	if err != nil {
		t.Fatalf("keyward %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// clientCreatedReasons maps each client's id to the reason its
// client_created audit event names.
func clientCreatedReasons(t *testing.T, dsn string) map[any]any {
	t.Helper()
	created := decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--type", "client_created", "--output", "json"))
	reasons := map[any]any{}
	for _, e := range created {
		reasons[e["subject"]] = e["reason"]
	}
	return reasons
}

const alicePassword = "correct horse battery staple"

func TestUsersCLI(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		out := mustRun(t, dsn, alicePassword+"\n", "users", "create", "--username", "alice", "--email", "alice@example.com", "--password-stdin", "--output", "json")
		u := decode[map[string]any](t, out)
		id, _ := u["id"].(string)
		if id == "" || u["username"] != "alice" || u["email"] != "alice@example.com" {
			t.Fatalf("create printed %s", out)
		}
		if strings.Contains(out, "argon2") || strings.Contains(out, alicePassword) {
			t.Fatalf("create printed the hash or the password: %s", out)
		}

		tests := []struct {
			name    string
			stdin   string
			args    []string
			wantErr string
		}{
			{"duplicate username in other case", alicePassword, []string{"users", "create", "--username", "ALICE", "--password-stdin"}, "taken"},
			{"empty username", alicePassword, []string{"users", "create", "--username", "", "--password-stdin"}, "username"},
			{"long username", alicePassword, []string{"users", "create", "--username", strings.Repeat("a", 65), "--password-stdin"}, "longer than 64"},
			{"bad email", alicePassword, []string{"users", "create", "--username", "bob", "--email", "bob@", "--password-stdin"}, "email"},
			{"email header injection", alicePassword, []string{"users", "create", "--username", "bob", "--email", "bob@example.com\r\nBcc: x@evil.test", "--password-stdin"}, "email"},
			{"short password", "short", []string{"users", "create", "--username", "bob", "--password-stdin"}, "password"},
			{"common password", "passwordpassword", []string{"users", "create", "--username", "bob", "--password-stdin"}, "password"},
			{"over-long password", strings.Repeat("x", 300), []string{"users", "create", "--username", "bob", "--password-stdin"}, "password"},
			{"no stdin flag", alicePassword, []string{"users", "create", "--username", "bob"}, "--password-stdin"},
			{"unknown user", "", []string{"users", "get", "nobody"}, "no user"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				out, err := run(t, dsn, tt.stdin, tt.args...)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q (out %s)", err, tt.wantErr, out)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error is not one line: %q", err)
				}
			})
		}
		// Nothing was half-written by the failures.
		list := decode[[]map[string]any](t, mustRun(t, dsn, "", "users", "list", "--output", "json"))
		if len(list) != 1 {
			t.Fatalf("users after failed creations: %v", list)
		}

		got := decode[map[string]any](t, mustRun(t, dsn, "", "users", "get", "ALICE", "--output", "json"))
		if got["id"] != id {
			t.Fatalf("get by username: %v", got)
		}
		if d := decode[map[string]any](t, mustRun(t, dsn, "", "users", "disable", id, "--output", "json")); d["disabled"] != true {
			t.Fatalf("disable: %v", d)
		}
		if d := decode[map[string]any](t, mustRun(t, dsn, "", "users", "enable", "alice", "--output", "json")); d["disabled"] != false {
			t.Fatalf("enable: %v", d)
		}
		db := storagetest.Open(t, dsn)
		before, _ := db.User(t.Context(), id)
		mustRun(t, dsn, "another long passphrase here\n", "users", "set-password", "alice", "--password-stdin")
		after, _ := db.User(t.Context(), id)
		if after.PasswordHash == before.PasswordHash || !after.PasswordChangedAt.After(before.PasswordChangedAt.Time) {
			t.Fatal("set-password did not change the hash and its time")
		}
		if !strings.HasPrefix(after.PasswordHash, "$argon2id$") {
			t.Fatalf("stored hash %q is not argon2id", after.PasswordHash[:10])
		}
		table := mustRun(t, dsn, "", "users", "list")
		if !strings.Contains(table, "USERNAME") || !strings.Contains(table, "alice") {
			t.Fatalf("table output: %s", table)
		}
		// The operator's actions are in the audit trail.
		evs := decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--user", "alice", "--output", "json"))
		var types []string
		for _, e := range evs {
			types = append(types, e["type"].(string))
			if e["actor"] != "cli" || e["subject"] != id {
				t.Fatalf("audit event %v", e)
			}
		}
		if got := strings.Join(types, ","); got != "password_changed,user_updated,user_updated,user_created" {
			t.Fatalf("audit types newest first: %s", got)
		}
		if evs := decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--type", "user_created", "--since", "1h", "--output", "json")); len(evs) != 1 {
			t.Fatalf("audit --type --since: %v", evs)
		}
		if _, err := run(t, dsn, "", "audit", "list", "--type", "made_up"); err == nil {
			t.Fatal("audit list accepted an unknown type")
		}
		mustRun(t, dsn, "", "users", "unlock", "alice")
		mustRun(t, dsn, "", "users", "delete", "alice")
		if _, err := run(t, dsn, "", "users", "get", id); err == nil {
			t.Fatal("user still there after delete")
		}
	})
}

func TestClientsCLI(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		out := mustRun(t, dsn, "", "clients", "create", "--id", "my-app", "--grant", "password", "--grant", "refresh_token",
			"--scope", "openid profile email api:read", "--audience", "api", "--name", "My App", "--output", "json")
		c := decode[map[string]any](t, out)
		secret, _ := c["client_secret"].(string)
		if c["client_id"] != "my-app" || !strings.HasPrefix(secret, "kwcs_") || len(secret) < len("kwcs_")+43 {
			t.Fatalf("create printed %s", out)
		}
		db := storagetest.Open(t, dsn)
		stored, err := db.Client(t.Context(), "my-app")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(stored.SecretHash, []byte(secret)) || len(stored.SecretHash) != 32 {
			t.Fatal("the secret is not stored as a SHA-256 hash")
		}
		if len(stored.Scopes) != 4 || stored.Name != "My App" || !stored.GrantTypes.Has("refresh_token") {
			t.Fatalf("stored %+v", stored)
		}
		got := mustRun(t, dsn, "", "clients", "get", "my-app", "--output", "json")
		if strings.Contains(got, "secret\"") || strings.Contains(got, secret) {
			t.Fatalf("get shows the secret: %s", got)
		}
		pub := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", "spa", "--public", "--grant", "refresh_token", "--output", "json"))
		if _, has := pub["client_secret"]; has || pub["public"] != true || pub["token_endpoint_auth_method"] != "none" {
			t.Fatalf("public client: %v", pub)
		}

		tests := []struct {
			name    string
			args    []string
			wantErr string
		}{
			{"duplicate id", []string{"clients", "create", "--id", "my-app", "--grant", "password"}, "taken"},
			{"unknown grant", []string{"clients", "create", "--id", "x", "--grant", "implicit"}, "unknown grant"},
			{"public with password grant", []string{"clients", "create", "--id", "x", "--public", "--grant", "password"}, "confidential"},
			{"bad scope", []string{"clients", "create", "--id", "x", "--scope", `a"b`}, "scope"},
			{"empty id", []string{"clients", "create", "--id", "", "--grant", "password"}, "client id"},
			{"rotate public", []string{"clients", "rotate-secret", "spa"}, "public"},
			{"unknown client", []string{"clients", "get", "nope"}, "no client"},
			{"malformed dsn", []string{"clients", "list", "--database", "mysql://x"}, "--database"},
			{"bad output", []string{"clients", "list", "--output", "yaml"}, "--output"},
			{"weak argon2", []string{"clients", "list", "--argon2-memory", "1024"}, "--argon2-memory"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := run(t, dsn, "", tt.args...)
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
			})
		}
		reasons := clientCreatedReasons(t, dsn)
		if reasons["my-app"] != "password_grant_enabled" || reasons["spa"] != nil {
			t.Fatalf("client_created reasons %v: enabling the password grant must be named (TE-14)", reasons)
		}
		if cs, _ := db.Clients(t.Context()); len(cs) != 2 {
			t.Fatalf("clients after failures: %d", len(cs))
		}

		rot := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "rotate-secret", "my-app", "--output", "json"))
		if s, _ := rot["client_secret"].(string); s == "" || s == secret {
			t.Fatalf("rotate-secret: %v", rot)
		}
		if d := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "disable", "my-app", "--output", "json")); d["disabled"] != true {
			t.Fatalf("disable: %v", d)
		}
		list := decode[[]map[string]any](t, mustRun(t, dsn, "", "clients", "list", "--output", "json"))
		if len(list) != 2 {
			t.Fatalf("list: %v", list)
		}
		mustRun(t, dsn, "", "clients", "delete", "spa")
		if _, err := db.Client(t.Context(), "spa"); err == nil {
			t.Fatal("client still there after delete")
		}
		var _ storage.Client
	})
}

func TestEnvironmentSetsFlags(t *testing.T) {
	dsn := storagetest.SQLiteDSN(t)
	t.Setenv("KEYWARD_DATABASE", dsn)
	t.Setenv("KEYWARD_OUTPUT", "json")
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"migrate"})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := decode[map[string]any](t, out.String()); v["dialect"] != "sqlite" {
		t.Fatalf("migrate with env: %s", out.String())
	}

	t.Setenv("KEYWARD_DATABASE_WAIT", "soon")
	cmd = newRootCmd()
	cmd.SetArgs([]string{"migrate"})
	err := cmd.ExecuteContext(t.Context())
	if err == nil || !strings.Contains(err.Error(), "KEYWARD_DATABASE_WAIT") || !strings.Contains(err.Error(), "--database-wait") {
		t.Fatalf("bad env value: %v", err)
	}
}

func TestUnreachableDatabaseFailsAfterWait(t *testing.T) {
	_, err := run(t, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", "", "--database-wait", "1s", "migrate")
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("err = %v", err)
	}
}
