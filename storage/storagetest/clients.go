package storagetest

import (
	"slices"
	"testing"

	"github.com/keyward/keyward/storage"
)

// runClients is the conformance of client registrations beyond plain CRUD.
func runClients(t *testing.T, open func(t *testing.T) *storage.DB) {
	t.Run("ClientIntrospectAudiences", func(t *testing.T) { testClientIntrospectAudiences(t, open(t)) })
	t.Run("ClientIntrospectAudiencesDefaultEmpty", func(t *testing.T) { testClientIntrospectAudiencesDefault(t, open(t)) })
}

// testClientIntrospectAudiences: the resource-server role is stored, read
// back in order, changed and emptied by UpdateClient, and listed.
func testClientIntrospectAudiences(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	rs := &storage.Client{ID: "orders-api", AuthMethod: storage.AuthSecretBasic, SecretHash: []byte{1},
		Audiences: storage.List{"api"}, IntrospectAudiences: storage.List{"api", "https://orders.example"}}
	app := &storage.Client{ID: "app", AuthMethod: storage.AuthSecretBasic, SecretHash: []byte{2}, Audiences: storage.List{"api"}}
	for _, c := range []*storage.Client{rs, app} {
		if err := db.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{"orders-api": {"api", "https://orders.example"}, "app": nil}
	check := func(when string) {
		t.Helper()
		for id, w := range want {
			got, err := db.Client(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.IntrospectAudiences, w) {
				t.Errorf("%s: %s introspect audiences %q, want %q", when, id, got.IntrospectAudiences, w)
			}
		}
		list, err := db.Clients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if !slices.Equal(c.IntrospectAudiences, want[c.ID]) {
				t.Errorf("%s: listed %s with introspect audiences %q, want %q", when, c.ID, c.IntrospectAudiences, want[c.ID])
			}
		}
	}
	check("created")
	if _, err := db.UpdateClient(ctx, "app", func(c *storage.Client) error {
		c.IntrospectAudiences = storage.List{"billing"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateClient(ctx, "orders-api", func(c *storage.Client) error {
		c.IntrospectAudiences = nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{"orders-api": nil, "app": {"billing"}}
	check("updated")
}

// testClientIntrospectAudiencesDefault: a row written without the column,
// as every client stored before migration 00005 was, has no resource-server
// role, so an upgrade grants no client introspection it did not ask for.
func testClientIntrospectAudiencesDefault(t *testing.T, db *storage.DB) {
	ctx := t.Context()
	_, err := db.SQL().ExecContext(ctx, db.SQL().Rebind(`INSERT INTO clients
		(id, name, public, auth_method, grant_types, scopes, audiences, created_at, updated_at)
		VALUES (?, '', ?, 'client_secret_basic', 'client_credentials', '', 'api', 1, 1)`), "old-rs", false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Client(ctx, "old-rs")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IntrospectAudiences) != 0 || !c.Audiences.Has("api") {
		t.Fatalf("pre-existing client read back with audiences %q, introspect audiences %q", c.Audiences, c.IntrospectAudiences)
	}
}
