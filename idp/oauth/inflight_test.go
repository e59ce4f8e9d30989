package oauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/internal/idptest"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// slowHasher is the real hasher taking as long as production parameters
// do (tens of milliseconds): it waits after each verification, so a login
// holds the account it read for that long before it stores its refresh
// family, as it would in production; with the tests' cheap parameters the
// window would be too short to meet.
type slowHasher struct {
	oauth.PasswordHasher
	delay time.Duration
}

func (h slowHasher) Verify(ctx context.Context, pw, enc string) (bool, bool, error) {
	ok, rehash, err := h.PasswordHasher.Verify(ctx, pw, enc)
	time.Sleep(h.delay)
	return ok, rehash, err
}

// accountEvent is one way an account changes under a login in flight: it
// is applied while a goroutine logs in back to back with the password
// current before it, and returns the password current after it.
type accountEvent struct {
	name   string
	rounds int
	apply  func(t *testing.T, e *idptest.Env, current string, round int) string
	// after runs once the logins have stopped and the families were
	// counted (re-enable, re-create).
	after func(t *testing.T, e *idptest.Env, current string)
}

// TestLoginInFlightDuringAccountChange is the reproduction of finding 1
// (RT-08, PW-13, PW-15): one goroutine logs in with alice's password back
// to back through the real server while her password is changed (POST
// /account/password, as `keyward users set-password` does, or with a reset
// link through POST /account/password/reset), or she is
// disabled or deleted (as the CLI and the admin API do), many times. A
// login that checked the password before the change but stores its
// refresh family after the change's revocation must not get one: after
// every round, no refresh token issued before the change works, no
// family of hers is live, no login answers 5xx, and the change itself
// answers normally.
func TestLoginInFlightDuringAccountChange(t *testing.T) {
	events := []accountEvent{
		{name: "account password", rounds: 120, apply: func(t *testing.T, e *idptest.Env, current string, round int) string {
			at := bearerFor(e, t, current)
			next := fmt.Sprintf("in flight passphrase number %d", round)
			if r := e.ChangePassword(at, current, next); r.Status != http.StatusNoContent {
				t.Fatalf("round %d: POST /account/password: %d %s", round, r.Status, r.Body)
			}
			return next
		}},
		{name: "operator set-password", rounds: 40, apply: func(t *testing.T, e *idptest.Env, _ string, round int) string {
			next := fmt.Sprintf("operator passphrase number %d", round)
			hash, err := e.Hasher.Hash(t.Context(), next)
			if err != nil {
				t.Fatal(err)
			}
			// What `keyward users set-password` does (cmd/keyward/users.go).
			u, err := e.DB.UpdateUser(t.Context(), e.Users["alice"].ID, func(u *storage.User) error {
				u.PasswordHash = hash
				u.PasswordChangedAt = storage.At(time.Now())
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := manage.New(e.DB, e.Srv.Auditor(), nil, time.Now).EndUserSessions(t.Context(), audit.Event{Actor: "cli"}, u.ID, storage.RevokePassword); err != nil {
				t.Fatal(err)
			}
			return next
		}},
		{name: "password reset", rounds: 30, apply: func(t *testing.T, e *idptest.Env, _ string, round int) string {
			// A reset link used through POST /account/password/reset.
			tok, hash := manage.NewAccountToken(manage.ResetTokenPrefix)
			now := time.Now()
			if err := e.DB.IssueAccountToken(t.Context(), storage.AccountToken{Hash: hash, Kind: storage.TokenReset,
				UserID: e.Users["alice"].ID, CreatedAt: storage.At(now), ExpiresAt: storage.At(now.Add(time.Hour))}); err != nil {
				t.Fatal(err)
			}
			next := fmt.Sprintf("reset passphrase number %d", round)
			if r := e.Account("/account/password/reset", "", idptest.JSONObject("token", tok, "new_password", next)); r.Status != http.StatusNoContent {
				t.Fatalf("round %d: POST /account/password/reset: %d %s", round, r.Status, r.Body)
			}
			return next
		}},
		{name: "disable", rounds: 20, apply: func(t *testing.T, e *idptest.Env, current string, _ int) string {
			// What `keyward users disable` and PATCH {"disabled":true} do.
			u, err := e.DB.UpdateUser(t.Context(), e.Users["alice"].ID, func(u *storage.User) error { u.Disabled = true; return nil })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := manage.New(e.DB, e.Srv.Auditor(), nil, time.Now).EndUserSessions(t.Context(), audit.Event{Actor: "cli"}, u.ID, storage.RevokeUserDisabled); err != nil {
				t.Fatal(err)
			}
			return current
		}, after: func(t *testing.T, e *idptest.Env, _ string) {
			// Enabling revives nothing: the tokens are checked afterwards.
			updateAlice(e, t, func(u *storage.User) { u.Disabled = false })
		}},
		{name: "delete", rounds: 20, apply: func(t *testing.T, e *idptest.Env, current string, _ int) string {
			if err := e.DB.DeleteUser(t.Context(), e.Users["alice"].ID); err != nil {
				t.Fatal(err)
			}
			return current
		}, after: func(t *testing.T, e *idptest.Env, current string) {
			e.AddUser("alice", current, false)
		}},
	}
	idptest.Backends(t, func(t *testing.T, b storagetest.Backend) {
		e := idptest.New(t, b, func(c *idp.Config) {
			c.Passwords = slowHasher{PasswordHasher: c.Passwords, delay: 4 * time.Millisecond}
			// Each round ends with a login or two refused with the old
			// password; hundreds of them must not trip the throttle.
			c.Throttle = guard.Policy{FreeFailures: 1 << 20, AccountFreeFailures: 1 << 20, IPFailures: 1 << 20}
		})
		current := idptest.AlicePassword
		total := 0
		for _, ev := range events {
			t.Run(ev.name, func(t *testing.T) {
				var bad roundResult
				badRounds := 0
				for round := range ev.rounds {
					r := raceRound(e, t, ev, &current, round)
					total++
					if r.liveFamilies+r.liveTokens+len(r.failures) > 0 {
						badRounds++
						bad.liveFamilies += r.liveFamilies
						bad.liveTokens += r.liveTokens
						bad.failures = append(bad.failures, r.failures...)
					}
				}
				if badRounds > 0 {
					t.Errorf("%d of %d rounds went wrong: %d families live after the change, %d refresh tokens from before it still work, %d bad answers (first: %q)",
						badRounds, ev.rounds, bad.liveFamilies, bad.liveTokens, len(bad.failures), bad.failures[:min(len(bad.failures), 3)])
				}
			})
		}
		e.Srv.Auditor().Flush()
		var caught int
		if err := e.DB.SQL().GetContext(t.Context(), &caught,
			`SELECT COUNT(*) FROM audit_events WHERE type = 'login_failed' AND reason = 'account_changed'`); err != nil {
			t.Fatal(err)
		}
		t.Logf("%d rounds; %d logins checked the password before the change and were refused after it", total, caught)
		if caught == 0 {
			t.Errorf("no login was in flight during any of %d changes: the test did not exercise the race", total)
		}
	})
}

// roundResult is what went wrong in a round.
type roundResult struct {
	liveFamilies int      // alice's families not revoked after the change
	liveTokens   int      // refresh tokens issued before the change that still work
	failures     []string // answers other than 200 and invalid_grant
}

// raceRound runs one round: logins back to back with *current until ev
// has been applied, then the checks. *current becomes the password after
// the round.
func raceRound(e *idptest.Env, t *testing.T, ev accountEvent, current *string, round int) roundResult {
	t.Helper()
	pw := *current
	var stop atomic.Bool
	firstOK := make(chan struct{})
	type loginsOut struct {
		refresh []string
		bad     []string
	}
	done := make(chan loginsOut, 1)
	go func() {
		var out loginsOut
		ok := false
		for i := 0; !stop.Load(); i++ {
			if i == 2000 {
				out.bad = append(out.bad, "logins never stopped")
				break
			}
			status, body, err := rawToken(e, "C1", idptest.PasswordForm("alice", pw))
			switch {
			case err != nil:
				out.bad = append(out.bad, err.Error())
			case status == http.StatusOK:
				var r struct {
					RefreshToken string `json:"refresh_token"`
				}
				json.Unmarshal(body, &r)
				out.refresh = append(out.refresh, r.RefreshToken)
				if !ok {
					ok = true
					close(firstOK)
				}
			case status == http.StatusBadRequest && strings.Contains(string(body), `"error":"invalid_grant"`):
				// the change is visible
			default:
				out.bad = append(out.bad, fmt.Sprintf("login: %d %s", status, body))
			}
		}
		done <- out
	}()
	select {
	case <-firstOK:
	case <-time.After(10 * time.Second):
		stop.Store(true)
		t.Fatalf("round %d: no login succeeded (%q)", round, (<-done).bad)
	}
	*current = ev.apply(t, e, pw, round)
	stop.Store(true)
	out := <-done
	res := roundResult{failures: out.bad}
	fs, err := e.DB.RefreshFamilies(t.Context(), e.Users["alice"].ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.RevokedAt.IsZero() {
			res.liveFamilies++
		}
	}
	if ev.after != nil {
		ev.after(t, e, *current)
	}
	for _, rt := range out.refresh {
		status, body, err := rawToken(e, "C1", idptest.RefreshForm(rt))
		switch {
		case err != nil:
			t.Fatal(err)
		case status == http.StatusOK:
			res.liveTokens++
		case status != http.StatusBadRequest || !strings.Contains(string(body), `"error":"invalid_grant"`):
			res.failures = append(res.failures, fmt.Sprintf("refresh: %d %s", status, body))
		}
	}
	return res
}

// bearerFor is an access token of alice's, from a client without refresh
// tokens, for the account API.
func bearerFor(e *idptest.Env, t *testing.T, pw string) string {
	t.Helper()
	r := e.Token("NOREF", idptest.PasswordForm("alice", pw))
	if r.Status != http.StatusOK {
		t.Fatalf("login for a bearer token: %d %s", r.Status, r.Body)
	}
	return r.Str("access_token")
}

// rawToken posts form to the token endpoint as client, from any goroutine:
// it returns errors instead of failing the test.
func rawToken(e *idptest.Env, client string, form url.Values) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, e.URL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", e.Basic(client))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
