package guard

import (
	"context"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// Throttle kinds of the account links (issue 14).
const (
	KindForgot     = "forgot"      // forgot-password requests from one IP
	KindResetToken = "reset_token" // refused reset or verification links from one IP
)

// Counter keys of the account links. No login check reads them, so neither
// a forgot request nor a bad link counts as a failed login (RR-09).
func forgotIPKey(ipb string) string       { return "fi:" + hashKey("ip", ipb) }
func forgotAccountKey(acct string) string { return "fa:" + acct }
func linkIPKey(ipb string) string         { return "rt:" + hashKey("ip", ipb) }

// tooMany is the 429 of a link limit, as the password grant's throttle answers.
func (t *Throttler) tooMany(kind string, c storage.Counter) error {
	t.metrics.Throttled(kind)
	return &web.Error{Code: web.ErrTemporarilyUnavail, Description: "too many requests; retry later",
		Status: http.StatusTooManyRequests, RetryAfter: max(c.BlockedUntil.Sub(t.now()), time.Second)}
}

// CountForgot counts a forgot-password request for account (the username
// or address as sent) from ip, both counters in one transaction, so every
// request does the same work whether or not the account exists. Past the
// per-IP limit it returns a 429 error; past the per-account limit it
// returns mail == false and no error: the caller answers as usual and
// mails nothing, so the limit neither locks the account nor tells anyone
// it exists.
func (t *Throttler) CountForgot(ctx context.Context, account, ip string) (mail bool, err error) {
	p := t.p
	cs, err := t.store.RecordFailures(ctx, t.now(),
		storage.Failure{Key: forgotIPKey(IPBucket(ip)), Policy: windowed(p.IPFailures, p.IPWindow)},
		storage.Failure{Key: forgotAccountKey(accountHash(account)), Policy: windowed(p.ForgotAccountLimit, p.ForgotAccountWindow)})
	if err != nil {
		return false, err
	}
	if cs[0].Failures > p.IPFailures {
		return false, t.tooMany(KindForgot, cs[0])
	}
	return cs[1].Failures <= p.ForgotAccountLimit, nil
}

// CheckLink refuses with 429 a reset or verification link from ip once ip
// has had IPFailures links refused within IPWindow (RR-07): guessing links
// is throttled like guessing passwords. Call it before looking the link up.
func (t *Throttler) CheckLink(ctx context.Context, ip string) error {
	k := linkIPKey(IPBucket(ip))
	cs, err := t.store.Counters(ctx, k)
	if err != nil {
		return err
	}
	if c := cs[k]; blockedBy(c, t.now()) > 0 {
		return t.tooMany(KindResetToken, c)
	}
	return nil
}

// LinkFailed counts a link refused as invalid from ip (CheckLink).
func (t *Throttler) LinkFailed(ctx context.Context, ip string) error {
	p := t.p
	cs, err := t.store.RecordFailures(ctx, t.now(),
		storage.Failure{Key: linkIPKey(IPBucket(ip)), Policy: windowed(p.IPFailures, p.IPWindow)})
	if err != nil {
		return err
	}
	if cs[0].Failures == p.IPFailures {
		t.log.WarnContext(ctx, "throttle engaged", "kind", KindResetToken, "failures", cs[0].Failures, "until", cs[0].BlockedUntil.Time)
	}
	return nil
}
