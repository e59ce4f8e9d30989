package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Signing-key states. A key moves KeyNext -> KeyActive -> KeyRetired and its
// row is deleted when it leaves the published set.
const (
	KeyNext    = "next"    // published, not yet signing
	KeyActive  = "active"  // signing; at most one
	KeyRetired = "retired" // no longer signing, published until its tokens expire
)

// ErrNoChange, returned by an UpdateKeySet update function, ends the
// transaction without writing anything; UpdateKeySet then returns nil.
var ErrNoChange = errors.New("no change")

// Key is one signing key of the published set. The private key is stored only
// as ciphertext; storage neither reads nor checks it.
type Key struct {
	KID         string // RFC 7638 thumbprint of the public key
	State       string // KeyNext, KeyActive or KeyRetired
	Alg         string // JWS algorithm, e.g. RS256
	PublicJWK   string // the public JWK (RFC 7517), JSON
	PrivateKey  []byte // encrypted private key
	CreatedAt   Time   // first published
	ActivatesAt Time   // started, or is planned to start, signing
	RetiresAt   Time   // stopped, or is planned to stop, signing
	ExpiresAt   Time   // leaves, or is planned to leave, the published set
}

// KeySet is the whole published key set and the version it was read at.
// Version grows by one with every change UpdateKeySet writes.
type KeySet struct {
	Keys    []Key
	Version int64
	// Publication records what the servers publish the key set with.
	Publication Publication
}

// Publication is how the servers publish the key set, recorded with it so
// that the CLI and every replica agree on when a next key may sign. Zero
// fields mean nothing is recorded. Durations are kept to the millisecond.
type Publication struct {
	JWKSMaxAge    time.Duration // the JWKS Cache-Control max-age
	PublishMargin time.Duration // added to JWKSMaxAge before a next key signs
	// Floor is the earliest a next key may sign, whatever its age: set when
	// the recorded max-age or margin went down, so copies of the JWKS cached
	// under the longer one have expired first.
	Floor Time
	// Algorithm is the JWS algorithm new keys are made for ("" : nothing
	// recorded).
	Algorithm string
}

func (p Publication) normalized() Publication {
	return Publication{p.JWKSMaxAge.Truncate(time.Millisecond), p.PublishMargin.Truncate(time.Millisecond), At(p.Floor.Time), p.Algorithm}
}

func (p Publication) equal(o Publication) bool {
	p, o = p.normalized(), o.normalized()
	return p.JWKSMaxAge == o.JWKSMaxAge && p.PublishMargin == o.PublishMargin && p.Floor.Equal(o.Floor.Time) &&
		p.Algorithm == o.Algorithm
}

// keySetQuery reads the version, the publication and every key in one
// statement, so all come from the same snapshot on either dialect. With no
// keys it returns one row of NULL key columns.
const keySetQuery = `SELECT v.version, v.jwks_max_age_ms, v.publish_margin_ms, v.publish_floor, v.key_algorithm,
	k.kid, k.state, k.alg, k.public_jwk, k.private_key,
	k.created_at, k.activates_at, k.retires_at, k.expires_at
	FROM key_set_version v LEFT JOIN signing_keys k ON 1 = 1
	WHERE v.id = 1
	ORDER BY k.created_at, k.kid`

type queryer interface {
	QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error)
}

func (db *DB) readKeySet(ctx context.Context, q queryer) (KeySet, error) {
	rows, err := q.QueryxContext(ctx, keySetQuery)
	if err != nil {
		return KeySet{}, err
	}
	defer rows.Close()
	var set KeySet
	for rows.Next() {
		var (
			kid, state, alg, jwk sql.NullString
			maxAge, margin       int64
			k                    Key
		)
		if err := rows.Scan(&set.Version, &maxAge, &margin, &set.Publication.Floor, &set.Publication.Algorithm,
			&kid, &state, &alg, &jwk, &k.PrivateKey,
			&k.CreatedAt, &k.ActivatesAt, &k.RetiresAt, &k.ExpiresAt); err != nil {
			return KeySet{}, err
		}
		set.Publication.JWKSMaxAge = time.Duration(maxAge) * time.Millisecond
		set.Publication.PublishMargin = time.Duration(margin) * time.Millisecond
		if !kid.Valid {
			continue // the LEFT JOIN row of an empty set
		}
		k.KID, k.State, k.Alg, k.PublicJWK = kid.String, state.String, alg.String, jwk.String
		set.Keys = append(set.Keys, k)
	}
	return set, rows.Err()
}

// KeySet returns the published key set, its publication and its version.
func (db *DB) KeySet(ctx context.Context) (KeySet, error) {
	ctx, end, err := db.turn(ctx)
	if err != nil {
		return KeySet{}, fmt.Errorf("read key set: %w", err)
	}
	defer end()
	set, err := db.readKeySet(ctx, db.x)
	if err != nil {
		return KeySet{}, fmt.Errorf("read key set: %w", err)
	}
	return set, nil
}

// KeySetVersion returns the key set's version: one small read, for replicas
// that poll for changes made elsewhere.
func (db *DB) KeySetVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := db.getOnce(ctx, &v, `SELECT version FROM key_set_version WHERE id = 1`); err != nil {
		return 0, fmt.Errorf("read key set version: %w", err)
	}
	return v, nil
}

// UpdateKeySet reads the key set, lets update decide what it becomes, and
// writes the difference in one transaction that holds the key-set lock
// (pg_advisory_xact_lock on PostgreSQL; SQLite transactions take the write
// lock at BEGIN), so concurrent callers, in this process or in other
// replicas, run one after another and each sees what the previous wrote.
//
// When update returns ErrNoChange, or a set with the same keys and
// publication, nothing is written and the version stays. Any other error
// rolls back and is returned. Otherwise added keys are inserted, removed keys
// deleted, changed keys rewritten, the publication written, and the version
// grows by one. The Version update returns is ignored.
func (db *DB) UpdateKeySet(ctx context.Context, update func(KeySet) (KeySet, error)) error {
	err := db.inTx(ctx, func(ctx context.Context, tx *sqlx.Tx) error {
		if db.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKeySet); err != nil {
				return fmt.Errorf("take key-set lock: %w", err)
			}
		}
		old, err := db.readKeySet(ctx, tx)
		if err != nil {
			return err
		}
		next, err := update(cloneKeySet(old))
		if err != nil {
			return err
		}
		return db.writeKeySet(ctx, tx, old, next)
	})
	if errors.Is(err, ErrNoChange) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update key set: %w", err)
	}
	return nil
}

// writeKeySet writes what differs between old and next. Changed rows are
// deleted and inserted again rather than updated in place, so a promotion
// (next -> active while active -> retired) never trips the one-per-state
// index halfway through.
func (db *DB) writeKeySet(ctx context.Context, tx *sqlx.Tx, old, next KeySet) error {
	before := make(map[string]Key, len(old.Keys))
	for _, k := range old.Keys {
		before[k.KID] = k
	}
	after := make(map[string]Key, len(next.Keys))
	for _, k := range next.Keys {
		if k.KID == "" {
			return errors.New("key without kid")
		}
		if _, dup := after[k.KID]; dup {
			return fmt.Errorf("kid %q appears twice", k.KID)
		}
		after[k.KID] = normalizeKey(k)
	}
	var del, ins []Key
	for kid, k := range before {
		if n, ok := after[kid]; !ok || !sameKey(k, n) {
			del = append(del, k)
		}
	}
	for kid, n := range after {
		if k, ok := before[kid]; !ok || !sameKey(k, n) {
			ins = append(ins, n)
		}
	}
	if len(del) == 0 && len(ins) == 0 && old.Publication.equal(next.Publication) {
		return ErrNoChange
	}
	for _, k := range del {
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM signing_keys WHERE kid = ?`), k.KID); err != nil {
			return fmt.Errorf("delete key %q: %w", k.KID, err)
		}
	}
	slices.SortFunc(ins, func(a, b Key) int { return strings.Compare(a.KID, b.KID) })
	for _, k := range ins {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO signing_keys
			(kid, state, alg, public_jwk, private_key, created_at, activates_at, retires_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			k.KID, k.State, k.Alg, k.PublicJWK, k.PrivateKey, k.CreatedAt, k.ActivatesAt, k.RetiresAt, k.ExpiresAt)
		if err != nil {
			return fmt.Errorf("write key %q: %w", k.KID, classify(err))
		}
	}
	pub := next.Publication.normalized()
	if pub.JWKSMaxAge < 0 || pub.PublishMargin < 0 {
		return fmt.Errorf("negative JWKS max-age %v or publish margin %v", pub.JWKSMaxAge, pub.PublishMargin)
	}
	if _, err := tx.ExecContext(ctx, db.q(`UPDATE key_set_version SET version = version + 1,
		jwks_max_age_ms = ?, publish_margin_ms = ?, publish_floor = ?, key_algorithm = ? WHERE id = 1`),
		pub.JWKSMaxAge.Milliseconds(), pub.PublishMargin.Milliseconds(), pub.Floor, pub.Algorithm); err != nil {
		return fmt.Errorf("bump key set version: %w", err)
	}
	return nil
}

// normalizeKey rounds times to what the database keeps, so a key that only
// differs below a millisecond does not count as changed.
func normalizeKey(k Key) Key {
	k.CreatedAt = At(k.CreatedAt.Time)
	k.ActivatesAt = At(k.ActivatesAt.Time)
	k.RetiresAt = At(k.RetiresAt.Time)
	k.ExpiresAt = At(k.ExpiresAt.Time)
	return k
}

func sameKey(a, b Key) bool {
	return a.KID == b.KID && a.State == b.State && a.Alg == b.Alg && a.PublicJWK == b.PublicJWK &&
		string(a.PrivateKey) == string(b.PrivateKey) &&
		a.CreatedAt.Equal(b.CreatedAt.Time) && a.ActivatesAt.Equal(b.ActivatesAt.Time) &&
		a.RetiresAt.Equal(b.RetiresAt.Time) && a.ExpiresAt.Equal(b.ExpiresAt.Time)
}

// cloneKeySet copies the keys so update may change them freely.
func cloneKeySet(s KeySet) KeySet {
	c := KeySet{Version: s.Version, Publication: s.Publication, Keys: make([]Key, len(s.Keys))}
	for i, k := range s.Keys {
		k.PrivateKey = slices.Clone(k.PrivateKey)
		c.Keys[i] = k
	}
	return c
}
