package main

import (
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestClientsCLIIntrospection: `clients create --introspect-audience`
// registers a resource server, `clients set-introspection` grants or takes
// away the role of an existing client (the upgrade path of migration
// 00005), both audited, both shown in JSON and in the table.
func TestClientsCLIIntrospection(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		out := mustRun(t, dsn, "", "clients", "create", "--id", "orders-api", "--introspect-audience", "api",
			"--introspect-audience", "api https://orders.example", "--output", "json")
		c := decode[map[string]any](t, out)
		if got, _ := c["introspect_audiences"].([]any); len(got) != 2 || got[0] != "api" || got[1] != "https://orders.example" {
			t.Fatalf("create printed %s", out)
		}
		mustRun(t, dsn, "", "clients", "create", "--id", "app", "--grant", "client_credentials", "--audience", "api")
		db := storagetest.Open(t, dsn)
		if app, err := db.Client(t.Context(), "app"); err != nil || len(app.IntrospectAudiences) != 0 {
			t.Fatalf("app: %v %+v: registered for api is not the role", err, app)
		}

		table := mustRun(t, dsn, "", "clients", "list")
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "INTROSPECTS") {
			t.Fatalf("table:\n%s", table)
		}
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "orders-api ") && !strings.Contains(l, "api,https://orders.example") {
				t.Errorf("orders-api row %q lacks its introspect audiences", l)
			}
		}

		// The upgrade path: grant the role to an existing client, then take it away.
		out = mustRun(t, dsn, "", "clients", "set-introspection", "app", "--introspect-audience", "api", "--output", "json")
		if got, _ := decode[map[string]any](t, out)["introspect_audiences"].([]any); len(got) != 1 || got[0] != "api" {
			t.Fatalf("set-introspection printed %s", out)
		}
		if app, _ := db.Client(t.Context(), "app"); !app.IntrospectAudiences.Has("api") {
			t.Fatalf("stored %+v", app)
		}
		human := mustRun(t, dsn, "", "clients", "set-introspection", "app", "--introspect-audience", "api", "--introspect-audience", "billing")
		if lines := strings.Split(strings.TrimSpace(human), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "INTROSPECTS") ||
			!strings.HasPrefix(lines[1], "app ") || !strings.Contains(lines[1], " api,billing ") {
			t.Errorf("set-introspection printed:\n%s", human)
		}
		mustRun(t, dsn, "", "clients", "set-introspection", "app", "--none")
		if app, _ := db.Client(t.Context(), "app"); len(app.IntrospectAudiences) != 0 {
			t.Fatalf("after --none: %+v", app)
		}

		tests := []struct {
			name    string
			args    []string
			wantErr string
		}{
			{"neither flag", []string{"clients", "set-introspection", "app"}, "--none"},
			{"both flags", []string{"clients", "set-introspection", "app", "--none", "--introspect-audience", "api"}, "not both"},
			{"quote in the audience", []string{"clients", "set-introspection", "app", "--introspect-audience", `a"b`}, "introspect audience"},
			{"unknown client", []string{"clients", "set-introspection", "nope", "--none"}, "no client"},
			{"public client", []string{"clients", "create", "--id", "spa", "--public", "--grant", "refresh_token",
				"--introspect-audience", "api"}, "public client cannot introspect"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := run(t, dsn, "", tt.args...); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
			})
		}

		reasons := clientCreatedReasons(t, dsn)
		if reasons["orders-api"] != "introspect_audiences" || reasons["app"] != nil {
			t.Errorf("client_created reasons %v", reasons)
		}
		updated := decode[[]map[string]any](t, mustRun(t, dsn, "", "audit", "list", "--type", "client_updated", "--output", "json"))
		if len(updated) != 3 || updated[0]["reason"] != "introspect_audiences" {
			t.Errorf("client_updated rows %v", updated)
		}
	})
}

// TestClientsCLIIDRule: `clients create` refuses an id that HTTP Basic
// clients which skip form-encoding could not send, with a message that
// names the allowed characters, and stores nothing.
func TestClientsCLIIDRule(t *testing.T) {
	dsn := storagetest.Backends[0].DSN(t)
	for _, id := range []string{"a+b", "a:b", "a%41", "a b", "a/b", "ü", strings.Repeat("x", 129)} {
		t.Run(id, func(t *testing.T) {
			_, err := run(t, dsn, "", "clients", "create", "--id", id, "--grant", "client_credentials")
			if err == nil || !strings.Contains(err.Error(), "client id") {
				t.Fatalf("err = %v, want one about the client id", err)
			}
			if len(id) <= 128 && !strings.Contains(err.Error(), "letters, digits and - . _ ~") {
				t.Errorf("err = %v, want it to name the allowed characters", err)
			}
		})
	}
	for _, id := range []string{"svc", "Orders-API_v2.1~x", strings.Repeat("x", 128)} {
		mustRun(t, dsn, "", "clients", "create", "--id", id, "--grant", "client_credentials")
	}
	if got := decode[[]map[string]any](t, mustRun(t, dsn, "", "clients", "list", "--output", "json")); len(got) != 3 {
		t.Errorf("%d clients stored, want the 3 valid ones", len(got))
	}
}
