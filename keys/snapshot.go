package keys

import (
	"cmp"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/storage"
)

// snapshot is one immutable view of the key set. Manager swaps a new one in
// whole; nothing in it changes after build.
type snapshot struct {
	version int64
	set     storage.KeySet
	active  *signingKey // nil when no active key could be loaded
	err     error       // why active is nil
	jwks    []byte
	etag    string
	public  jose.JSONWebKeySet
}

// build loads set into a snapshot. Keys whose public part is malformed are
// left out of the JWKS and reported. The active key's private part is
// decrypted under kek, unless prev already holds that kid (the kid is the
// public key's thumbprint, so it is the same key): a replica keeps signing
// across a rewrap it has no new KEK for.
//
// mk, when set, makes the signer of an RSA key (Policy.RSASigner).
func build(set storage.KeySet, prev *snapshot, kek []byte, mk func(*rsa.PrivateKey) (crypto.Signer, error)) (*snapshot, []error) {
	s := &snapshot{version: set.Version, set: set}
	var problems []error
	type pubKey struct {
		k   storage.Key
		pub crypto.PublicKey
	}
	keys := make([]pubKey, 0, len(set.Keys))
	for _, k := range set.Keys {
		pub, err := parsePublic(k)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		keys = append(keys, pubKey{k, pub})
	}
	// Active first, then next, then retired, newest first: the order only
	// matters to clients that wrongly take the first key.
	rank := map[string]int{storage.KeyActive: 0, storage.KeyNext: 1, storage.KeyRetired: 2}
	slices.SortStableFunc(keys, func(a, b pubKey) int {
		if c := cmp.Compare(rank[a.k.State], rank[b.k.State]); c != 0 {
			return c
		}
		return b.k.CreatedAt.Compare(a.k.CreatedAt.Time)
	})
	doc := struct {
		Keys []publicJWK `json:"keys"`
	}{Keys: []publicJWK{}}
	for _, pk := range keys {
		doc.Keys = append(doc.Keys, toJWK(pk.pub, pk.k.KID))
		s.public.Keys = append(s.public.Keys, jose.JSONWebKey{Key: pk.pub, KeyID: pk.k.KID, Algorithm: pk.k.Alg, Use: "sig"})
		if pk.k.State != storage.KeyActive {
			continue
		}
		if prev != nil && prev.active != nil && prev.active.kid == pk.k.KID {
			s.active = prev.active
			continue
		}
		priv, err := decrypt(pk.k, pk.pub, kek)
		if err != nil {
			s.err = err
			problems = append(problems, err)
			continue
		}
		sk, err := newSigningKey(pk.k.KID, pk.k.Alg, priv, mk)
		if err != nil {
			s.err = err
			problems = append(problems, err)
			continue
		}
		s.active = sk
	}
	if s.active == nil && s.err == nil {
		s.err = errors.New("the key set has no active key")
	}
	s.jwks, _ = json.Marshal(doc) // plain strings: cannot fail
	sum := sha256.Sum256(s.jwks)
	s.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
	return s, problems
}
