package storage_test

import (
	"testing"
	"time"

	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestClientCacheBound: Client reads a client from the database at most
// once per cache TTL; a change made through the same DB takes effect at
// once, and one made elsewhere (a second DB on the same database: another
// replica, or the keyward CLI) within the TTL, the documented bound.
func TestClientCacheBound(t *testing.T) {
	const ttl = 300 * time.Millisecond
	for _, be := range storagetest.Backends {
		t.Run(be.Name, func(t *testing.T) {
			ctx := t.Context()
			dsn := be.DSN(t)
			n := &storage.StatementCounter{}
			here := storagetest.Open(t, dsn, storage.WithCounter(n), storage.WithClientCacheTTL(ttl))
			elsewhere := storagetest.Open(t, dsn, storage.WithClientCacheTTL(0))
			c := &storage.Client{ID: "svc", Name: "svc", SecretHash: []byte("old-hash"), AuthMethod: storage.AuthSecretBasic,
				GrantTypes: storage.List{"client_credentials"}}
			if err := here.CreateClient(ctx, c); err != nil {
				t.Fatal(err)
			}
			read := func(db *storage.DB) storage.Client {
				t.Helper()
				c, err := db.Client(ctx, "svc")
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			read(here)
			before := n.Counts()
			read(here)
			if got := n.Counts().Sub(before); got.Statements != 0 {
				t.Errorf("a second read within the TTL ran %v", got)
			}

			// A change through this DB: seen at once.
			if _, err := here.UpdateClient(ctx, "svc", func(c *storage.Client) error { c.SecretHash = []byte("new-hash"); return nil }); err != nil {
				t.Fatal(err)
			}
			if got := read(here); string(got.SecretHash) != "new-hash" {
				t.Fatalf("after a local secret change, Client has %q", got.SecretHash)
			}

			// A change elsewhere: seen within the TTL.
			if _, err := elsewhere.UpdateClient(ctx, "svc", func(c *storage.Client) error { c.Disabled = true; return nil }); err != nil {
				t.Fatal(err)
			}
			changed := time.Now()
			for !read(here).Disabled {
				if time.Since(changed) > ttl+time.Second {
					t.Fatalf("a client disabled elsewhere still reads as enabled after %v (TTL %v)", time.Since(changed), ttl)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := elsewhere.DeleteClient(ctx, "svc"); err != nil {
				t.Fatal(err)
			}
			deleted := time.Now()
			for {
				if _, err := here.Client(ctx, "svc"); err != nil {
					break
				}
				if time.Since(deleted) > ttl+time.Second {
					t.Fatalf("a client deleted elsewhere is still read after %v (TTL %v)", time.Since(deleted), ttl)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
