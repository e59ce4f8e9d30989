package guard

import (
	"context"
	"net/http"
	"time"

	"github.com/keyward/keyward/idp/web"
	"github.com/keyward/keyward/storage"
)

// KindRegistration is the throttle kind of the per-IP registration limit.
const KindRegistration = "registration"

// registrationKey is the counter of registrations from one IP bucket; no
// login check reads it, so registering does not use up the IP's login
// failures, nor failed logins its registrations.
func registrationKey(ipb string) string { return "r:" + hashKey("ip", ipb) }

// CountRegistration counts a registration from client address ip and
// refuses it with 429 and Retry-After once the IP has made the throttle's
// IPFailures registrations within IPWindow (BF-06, BF-09). Counting first,
// in one transaction, keeps the limit exact under parallel requests.
func (t *Throttler) CountRegistration(ctx context.Context, ip string) error {
	p := t.p
	cs, err := t.store.RecordFailures(ctx, t.now(),
		storage.Failure{Key: registrationKey(IPBucket(ip)), Policy: windowed(p.IPFailures, p.IPWindow)})
	if err != nil {
		return err
	}
	c := cs[0]
	if c.Failures == p.IPFailures {
		t.log.WarnContext(ctx, "throttle engaged", "kind", KindRegistration, "failures", c.Failures, "until", c.BlockedUntil.Time)
	}
	if c.Failures <= p.IPFailures {
		return nil
	}
	t.metrics.Throttled(KindRegistration)
	return &web.Error{Code: web.ErrTemporarilyUnavail, Description: "too many registrations from this address; retry later",
		Status: http.StatusTooManyRequests, RetryAfter: max(c.BlockedUntil.Sub(t.now()), time.Second)}
}
