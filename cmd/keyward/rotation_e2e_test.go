package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/internal/testsupport/dbtest"
	"github.com/keyward/keyward/storage/storagetest"
)

// jwksSnapshot is a JWKS as a resource server cached it, and when.
type jwksSnapshot struct {
	at  time.Time
	set jose.JSONWebKeySet
}

func fetchJWKS(t *testing.T, base string) jwksSnapshot {
	t.Helper()
	at := time.Now()
	res, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(res.Body).Decode(&set); err != nil {
		t.Fatalf("decode JWKS: %v", err)
	}
	return jwksSnapshot{at: at, set: set}
}

// clientCredentialsToken asks base for an access token.
func clientCredentialsToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	req := testsupport.FormRequest(t, http.MethodPost, base+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}})
	req.SetBasicAuth(id, secret)
	status, b, _ := testsupport.Do(t, nil, req)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &body) != nil || body.AccessToken == "" {
		t.Fatalf("token from %s: %d %s", base, status, b)
	}
	return body.AccessToken
}

// verifyWith checks tok's signature against a cached key set and returns
// its kid, or an error when the cache cannot validate it.
func verifyWith(snap jwksSnapshot, tok string) (string, error) {
	jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", err
	}
	kid := jws.Signatures[0].Header.KeyID
	ks := snap.set.Key(kid)
	if len(ks) != 1 {
		return kid, fmt.Errorf("kid %s is not in the JWKS fetched at %s", kid, snap.at.Format(time.RFC3339))
	}
	if _, err := jws.Verify(ks[0].Key); err != nil {
		return kid, err
	}
	return kid, nil
}

// TestReplicasRotateWithoutGap runs two keyward processes on one PostgreSQL
// database with a one-minute rotation period. For several rotations, every
// token either replica issues must verify against the oldest JWKS a
// resource server may still hold: one fetched a full max-age earlier.
func TestReplicasRotateWithoutGap(t *testing.T) {
	t.Parallel() // it mostly waits for rotations: let the others wait alongside
	if testing.Short() {
		t.Skip("runs for several one-minute rotations")
	}
	const maxAge = 10 * time.Second
	dsn := storagetest.PostgresDSN(t)
	kek := writeKEK(t, t.TempDir())
	c := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", "svc", "--grant", "client_credentials",
		"--scope", "api:read", "--audience", "api", "--output", "json"))
	secret := c["client_secret"].(string)
	args := []string{"--database", dsn, "--key-encryption-key-file", kek, "--key-rotation-period", "1m",
		"--jwks-max-age", maxAge.String(), "--key-publish-margin", "5s", "--access-token-ttl", "1m"}
	replicas := []*process{startProcess(t, nil, args...), startProcess(t, nil, args...)}

	const rotations = 3
	deadline := time.Now().Add(rotations*time.Minute + 20*time.Second)
	var history []jwksSnapshot // JWKS as fetched, oldest first
	kids := map[string]bool{}
	issued := 0
	for i := 0; time.Now().Before(deadline); i++ {
		history = append(history, fetchJWKS(t, replicas[i%2].URL))
		// The stalest copy a resource server may hold: fetched at most
		// max-age ago, and as old as that allows.
		stalest := history[len(history)-1]
		for _, s := range history {
			if time.Since(s.at) <= maxAge {
				stalest = s
				break
			}
		}
		for _, r := range replicas {
			tok := clientCredentialsToken(t, r.URL, "svc", secret)
			kid, err := verifyWith(stalest, tok)
			if err != nil {
				t.Fatalf("token %d from %s does not verify against a JWKS %s old: %v", issued, r.URL, time.Since(stalest.at).Round(time.Second), err)
			}
			kids[kid] = true
			issued++
		}
		time.Sleep(time.Second)
	}
	if len(kids) < rotations {
		t.Fatalf("tokens were signed by %d keys over %d rotation periods; the schedule did not rotate", len(kids), rotations)
	}
	t.Logf("%d tokens from two replicas, signed by %d keys, all verified against JWKS copies up to %v old", issued, len(kids), maxAge)
}

// TestKeysRotateRightAfterStart runs `keyward keys rotate` (no --force, no
// timing flags) as its own process right after a server with a 10 s JWKS
// max-age and 5 s margin started. The next key is seconds old, so the
// command schedules the rotation, prints when, and exits 0; the server
// carries it out: a token with the new kid appears within max-age + margin
// (+ the server's 5 s poll), never before the printed moment, and every
// token verifies against the JWKS a resource server cached before the
// command ran.
func TestKeysRotateRightAfterStart(t *testing.T) {
	t.Parallel() // it mostly waits for rotations: let the others wait alongside
	const maxAge, margin, poll = 10 * time.Second, 5 * time.Second, 5 * time.Second
	dbtest.ForEachBackend(t, func(t *testing.T, dsn string) {
		kek := writeKEK(t, t.TempDir())
		c := decode[map[string]any](t, mustRun(t, dsn, "", "clients", "create", "--id", "svc", "--grant", "client_credentials",
			"--scope", "api:read", "--audience", "api", "--output", "json"))
		secret := c["client_secret"].(string)
		p := startProcess(t, nil, "--database", dsn, "--key-encryption-key-file", kek,
			"--jwks-max-age", maxAge.String(), "--key-publish-margin", margin.String())
		started := time.Now() // the key set is at most this old
		cached := fetchJWKS(t, p.URL)
		oldKid, err := verifyWith(cached, clientCredentialsToken(t, p.URL, "svc", secret))
		if err != nil {
			t.Fatal(err)
		}

		cmd := exec.Command(os.Args[0], "--database", dsn, "keys", "rotate", "--key-encryption-key-file", kek, "--output", "json")
		cmd.Env = append(os.Environ(), "KEYWARD_TEST_RUN_MAIN=1")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("keyward keys rotate right after start: %v\n%s%s", err, out, stderr.String())
		}
		rot := decode[map[string]any](t, string(out))
		newKid, _ := rot["active"].(string)
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rot["at"]))
		if err != nil || rot["scheduled"] != true || rot["forced"] != false || rot["retired"] != oldKid || newKid == "" || newKid == oldKid {
			t.Fatalf("keys rotate printed %s: want a rotation from %s scheduled", out, oldKid)
		}
		if at.After(started.Add(maxAge + margin)) {
			t.Fatalf("rotation scheduled for %v, later than max-age + margin after start (%v)", at, started.Add(maxAge+margin))
		}

		deadline := started.Add(maxAge + margin + poll + 2*time.Second)
		for {
			tok := clientCredentialsToken(t, p.URL, "svc", secret)
			kid, err := verifyWith(cached, tok)
			if err != nil {
				t.Fatalf("a token does not verify against the JWKS cached before the rotation: %v", err)
			}
			if kid == newKid {
				if time.Now().Before(at) {
					t.Fatalf("the new key signed at %v, before the scheduled %v", time.Now(), at)
				}
				t.Logf("new kid %s signing %v after start (scheduled for %v after)", kid, time.Since(started).Round(100*time.Millisecond), at.Sub(started).Round(100*time.Millisecond))
				break
			}
			if kid != oldKid {
				t.Fatalf("token signed by %s, neither the old %s nor the new %s", kid, oldKid, newKid)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no token with the new kid %s within max-age + margin + poll of start", newKid)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
