package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
)

// jwksCache is the JWKS copies a resource server may hold: fetched from
// any replica, each kept for max-age.
type jwksCache struct {
	maxAge time.Duration
	mu     sync.Mutex
	snaps  []jwksSnapshot // oldest first
	kids   map[string]int // tokens verified, by signing key
	failed []string
}

type jwksSnapshot struct {
	at  time.Time
	set jose.JSONWebKeySet
}

func (c *jwksCache) fetch(base string) error {
	at := time.Now()
	res, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		return fmt.Errorf("decode JWKS: %w", err)
	}
	c.mu.Lock()
	c.snaps = append(c.snaps, jwksSnapshot{at: at, set: set})
	c.mu.Unlock()
	return nil
}

// verify checks tok against the stalest copy still within max-age: the
// oldest a resource server may validate with.
func (c *jwksCache) verify(base, tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.snaps) == 0 {
		return
	}
	stalest := c.snaps[len(c.snaps)-1]
	for _, s := range c.snaps {
		if time.Since(s.at) <= c.maxAge {
			stalest = s
			break
		}
	}
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		c.failed = append(c.failed, fmt.Sprintf("token from %s does not parse: %v", base, err))
		return
	}
	kid := jws.Signatures[0].Header.KeyID
	ks := stalest.set.Key(kid)
	if len(ks) != 1 {
		c.failed = append(c.failed, fmt.Sprintf("token from %s signed by %s, not in the JWKS fetched %v earlier", base, kid, time.Since(stalest.at).Round(time.Millisecond)))
		return
	}
	if _, err := jws.Verify(ks[0].Key); err != nil {
		c.failed = append(c.failed, fmt.Sprintf("token from %s does not verify with %s: %v", base, kid, err))
		return
	}
	c.kids[kid]++
}

// TestReplicasKilledDuringRotation runs three keyward replicas on one
// PostgreSQL (the test's own cluster) under a mixed load spread over them,
// with a key rotation every minute and a 10 s JWKS max-age, and SIGKILLs
// one replica midway, restarting it a few seconds later. Every access token
// issued must verify against the JWKS a resource server fetched up to
// max-age earlier from any replica; the tokens must come from at least two
// signing keys (a rotation happened); and no refresh family may fork or be
// lost: the chains, rotated on whichever replica the load picked, end with
// their acknowledged head rotating and the token before it refused.
func TestReplicasKilledDuringRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for two and a half minutes, past two key rotations")
	}
	t.Parallel()
	runReplicas(t, false, 150*time.Second, 70*time.Second)
}

// TestReplicasKilledNegativeControl kills one of three replicas that
// acknowledge before they commit: the checker must find the rotations the
// kill lost.
func TestReplicasKilledNegativeControl(t *testing.T) {
	t.Parallel()
	runReplicas(t, true, 10*time.Second, 6*time.Second)
}

func runReplicas(t *testing.T, faulty bool, total, killAt time.Duration) {
	const maxAge = 10 * time.Second
	pg := testsupport.StartPrivatePostgres(t, "max_connections=200")
	c := newCluster(t, pg.DSN, faulty, 4)
	kinds, chains := []string{kindClientCredentials, kindRefresh, kindPassword, kindRefresh}, 12
	if faulty {
		// Commits held open 2 s, so the kill finds several of the victim's
		// pending; logins share throttle rows those would hold locked (see
		// the restart test), so the control's load rotates refresh chains.
		c.commitDelay = 2 * time.Second
		kinds, chains = []string{kindClientCredentials, kindRefresh}, 24
	}
	args := []string{"--key-rotation-period", "1m", "--jwks-max-age", maxAge.String(),
		"--key-publish-margin", "5s", "--access-token-ttl", "1m"}
	replicas := []*testsupport.Process{c.serve(args...), c.serve(args...), c.serve(args...)}
	urls := func() []string {
		var u []string
		for _, r := range replicas {
			if r != nil {
				u = append(u, r.URL)
			}
		}
		return u
	}
	cache := &jwksCache{maxAge: maxAge, kids: map[string]int{}}
	if err := cache.fetch(replicas[0].URL); err != nil {
		t.Fatal(err)
	}
	w := newWorkload(t, c, urls(), kinds...)
	w.onAccess = cache.verify
	if faulty {
		w.pace = c.commitDelay + 500*time.Millisecond
	}
	w.login(t.Context(), chains)

	ctx, cancel := context.WithCancel(t.Context())
	wg := w.run(ctx, 4)
	var fetches sync.WaitGroup
	fetches.Add(1)
	go func() { // the resource servers' JWKS fetches, from any replica
		defer fetches.Done()
		for ctx.Err() == nil {
			time.Sleep(time.Second)
			w.mu.Lock()
			base := w.targets[rand.IntN(len(w.targets))]
			w.mu.Unlock()
			cache.fetch(base) // a replica just killed does not answer: the cache keeps its copies
		}
	}()

	start := time.Now()
	time.Sleep(killAt)
	victim := replicas[1]
	signal(t, victim, syscall.SIGKILL) // requests in flight to it get no answer, and are retried
	killed := time.Since(start)
	w.setTargets(replicas[0].URL, replicas[2].URL)
	time.Sleep(3 * time.Second)
	replicas[1] = c.serve(args...)
	w.setTargets(urls()...)
	time.Sleep(time.Until(start.Add(total)))
	cancel()
	wg.Wait()
	fetches.Wait()

	cache.mu.Lock()
	kids, failed := cache.kids, cache.failed
	cache.mu.Unlock()
	n := 0
	for _, k := range kids {
		n += k
	}
	t.Logf("replica 2 SIGKILLed %v in and restarted 3 s later; %d access tokens verified against JWKS copies up to %v old, by signing key: %v; %d JWKS fetches",
		killed.Round(time.Second), n, maxAge, kids, len(cache.snaps))
	if !faulty {
		for _, f := range failed[:min(len(failed), 10)] {
			t.Errorf("%s", f)
		}
		if len(failed) > 0 {
			t.Errorf("%d of %d access tokens failed verification against a cached JWKS", len(failed), n+len(failed))
		}
		if len(kids) < 2 {
			t.Errorf("tokens were signed by %d key(s) in %v: no rotation happened under the load", len(kids), total)
		}
	}
	live, _, _ := w.verify(t.Context(), replicas[2].URL)
	t.Logf("after the kill: %d of %d chains rotate from their acknowledged head, the token before refused", live, len(w.chains))
	w.report(faulty)
}
