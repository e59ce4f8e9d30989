package keys

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// TestStoredRowsHoldNoPrivateKey reads the raw signing_keys rows (and, for
// SQLite, the database files) and looks for any form of the private keys.
func TestStoredRowsHoldNoPrivateKey(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		kek, c := NewKEK(), newClock()
		m := newManager(t, db, kek, c)
		c.Advance(10 * time.Minute)
		if _, err := m.Rotate(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		rows, err := db.SQL().QueryxContext(t.Context(), `SELECT * FROM signing_keys`)
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		nrows := 0
		for rows.Next() {
			cols, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range cols {
				if b, ok := v.([]byte); ok {
					raw.Write(b)
				} else {
					fmt.Fprint(&raw, v)
				}
				raw.WriteByte(0)
			}
			nrows++
		}
		rows.Close()
		if nrows != 3 {
			t.Fatalf("%d rows, want 3", nrows)
		}
		haystacks := map[string][]byte{"rows": raw.Bytes()}
		if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
			for _, f := range []string{path, path + "-wal"} {
				if b, err := os.ReadFile(f); err == nil {
					haystacks[filepath.Base(f)] = b
				}
			}
		}
		doc, _ := m.JWKS()
		haystacks["JWKS"] = doc

		needles := map[string][]byte{"PEM": []byte("PRIVATE KEY"), `"d":`: []byte(`"d":`), `"p":`: []byte(`"p":`)}
		set, _ := db.KeySet(t.Context())
		for _, k := range set.Keys {
			pub, err := parsePublic(k)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := decrypt(k, pub, kek)
			if err != nil {
				t.Fatal(err)
			}
			priv := signer.(*rsa.PrivateKey)
			pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
			pkcs1 := x509.MarshalPKCS1PrivateKey(priv)
			d := priv.D.Bytes()
			needles[k.KID+" PKCS#8 prefix"] = pkcs8[4:26] // version, rsaEncryption OID, NULL, OCTET STRING
			needles[k.KID+" PKCS#1 prefix"] = pkcs1[4:12] // version, modulus INTEGER header
			needles[k.KID+" d"] = d[:16]
			needles[k.KID+" p"] = priv.Primes[0].Bytes()[:16]
			needles[k.KID+" d base64url"] = []byte(base64.RawURLEncoding.EncodeToString(d)[:24])
			needles[k.KID+" d base64"] = []byte(base64.StdEncoding.EncodeToString(d)[:24])
			needles[k.KID+" d hex"] = []byte(hex.EncodeToString(d)[:32])
		}
		for hn, hay := range haystacks {
			for nn, needle := range needles {
				if bytes.Contains(hay, needle) {
					t.Errorf("%s contains %s", hn, nn)
				}
			}
		}
	})
}

func TestWrongKEK(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		c := newClock()
		m := newManager(t, db, NewKEK(), c)
		before, _ := db.KeySet(t.Context())
		c.Advance(3 * time.Hour) // a rotation is due: it must not happen under the wrong key
		_, err := NewManager(t.Context(), db, NewKEK(), managerPolicy, nil, c.Now)
		if !errors.Is(err, ErrWrongKEK) || !strings.Contains(err.Error(), "key-encryption key does not decrypt the stored signing keys") {
			t.Fatalf("NewManager with another KEK: %v", err)
		}
		rot, _ := NewRotator(db, NewKEK(), managerPolicy, c.Now)
		if _, err := rot.Rotate(t.Context(), true); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("Rotate with another KEK: %v", err)
		}
		if _, err := rot.Revoke(t.Context(), activeKID(m)); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("Revoke with another KEK: %v", err)
		}
		after, _ := db.KeySet(t.Context())
		if after.Version != before.Version || !slices.Equal(kidsOfSet(after), kidsOfSet(before)) {
			t.Fatalf("the key set changed under a wrong KEK: %v -> %v", kidsOfSet(before), kidsOfSet(after))
		}
	})
}

func kidsOfSet(s storage.KeySet) []string {
	var out []string
	for _, k := range s.Keys {
		out = append(out, k.KID+":"+k.State)
	}
	slices.Sort(out)
	return out
}

func TestRewrap(t *testing.T) {
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		db := storagetest.Open(t, dsn)
		oldKEK, newKEK, c := NewKEK(), NewKEK(), newClock()
		running := newManager(t, db, oldKEK, c)
		_, etag := running.JWKS()
		if _, err := Rewrap(t.Context(), db, NewKEK(), newKEK); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("rewrap from a wrong KEK: %v", err)
		}
		if v, _ := db.KeySetVersion(t.Context()); v != 1 {
			t.Fatal("a failed rewrap wrote")
		}
		n, err := Rewrap(t.Context(), db, oldKEK, newKEK)
		if err != nil || n != 2 {
			t.Fatalf("Rewrap = %d, %v", n, err)
		}
		if _, err := NewManager(t.Context(), db, oldKEK, managerPolicy, nil, c.Now); !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("old KEK after rewrap: %v", err)
		}
		m := newManager(t, db, newKEK, c)
		if activeKID(m) != activeKID(running) {
			t.Fatal("rewrap changed the active key")
		}
		// The replica still on the old KEK reloads, keeps its key and the
		// same JWKS (the published keys did not change).
		tick(t, running)
		if _, e := running.JWKS(); e != etag || running.Ready() != nil {
			t.Fatalf("after rewrap: etag %s (was %s), ready %v", e, etag, running.Ready())
		}
		if _, err := running.Sign("at+jwt", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		// It cannot load a key made after the rewrap: it stops signing
		// rather than sign with a key that is no longer active.
		c.Advance(10 * time.Minute)
		if _, err := m.Rotate(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		tick(t, running)
		if err := running.Ready(); !errors.Is(err, ErrNotReady) || !errors.Is(err, ErrWrongKEK) {
			t.Fatalf("old-KEK replica after rotation: ready %v", err)
		}
		if _, err := running.Sign("at+jwt", []byte("{}")); !errors.Is(err, ErrNotReady) {
			t.Fatalf("old-KEK replica signs: %v", err)
		}
	})
}
