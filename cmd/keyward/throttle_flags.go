package main

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/keyward/keyward/idp/guard"
	"github.com/spf13/pflag"
)

// maxFreeFailures bounds the free failures of both account limits: at most
// 100 consecutive failures may be checked before a wait starts (BF-01, NIST
// SP 800-63B-4 §3.2.2), and a known IP is exempt from the account-wide
// budget, so the (account, IP) limit must respect the bound too.
const maxFreeFailures = 99

// throttleFlags are serve's brute-force policy (guard.Policy;
// docs/protection.md explains each limit). Every value is checked as it is
// parsed, from a flag or from its KEYWARD_ variable.
type throttleFlags struct{ p guard.Policy }

func (f *throttleFlags) register(fl *pflag.FlagSet) {
	f.p = guard.DefaultPolicy()
	p := &f.p
	fl.Var(intIn(&p.FreeFailures, 1, maxFreeFailures), "login-free-failures",
		"failed logins one account may have from one IP (an IPv6 /64) before backoff starts (1 to 99)")
	fl.Var(positive(&p.BaseDelay), "login-backoff-base", "first (account, IP) wait; doubles with each further failure")
	fl.Var(positive(&p.MaxDelay), "login-backoff-max", "longest (account, IP) wait")
	fl.Var(intIn(&p.AccountFreeFailures, 1, maxFreeFailures), "login-account-budget",
		"failed logins an account may have from all IPs together before IPs it has not signed in from must wait (1 to 99)")
	fl.Var(positive(&p.AccountBaseDelay), "login-account-backoff-base", "first account-wide wait; doubles with each further failure")
	fl.Var(positive(&p.AccountMaxDelay), "login-account-backoff-max", "longest account-wide wait")
	fl.Var(positive(&p.KnownIPTTL), "login-known-ip-ttl", "how long an IP an account signed in from stays exempt from the account-wide wait")
	fl.Var(intIn(&p.IPFailures, 1, 1<<30), "login-ip-limit", "failed logins from one IP per --login-ip-window before its logins get 429; failed client authentications are counted apart, to the same limit, and then only failures get 429")
	fl.Var(positive(&p.IPWindow), "login-ip-window", "window of --login-ip-limit")
	fl.Var(intIn(&p.ClientFailures, 1, 1<<30), "client-auth-limit", "failed authentications of one client from one IP per --client-auth-window before 429")
	fl.Var(positive(&p.ClientWindow), "client-auth-window", "window of --client-auth-limit")
	fl.Var(positiveRate(&p.CallerRate), "introspect-revoke-rate",
		"calls per second one client may make to introspection and revocation together, on each replica, after --introspect-revoke-burst")
	fl.Var(intIn(&p.CallerBurst, 1, 1<<20), "introspect-revoke-burst", "calls one client may make at once before --introspect-revoke-rate applies")
}

// policy is the throttle policy the flags set.
func (f *throttleFlags) policy() guard.Policy { return f.p }

// boundedInt is an int flag that refuses values outside [lo, hi].
type boundedInt struct {
	v      *int
	lo, hi int
}

func intIn(v *int, lo, hi int) *boundedInt { return &boundedInt{v, lo, hi} }

func (b *boundedInt) String() string {
	if b.v == nil {
		return "0"
	}
	return strconv.Itoa(*b.v)
}

func (b *boundedInt) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	if n < b.lo || n > b.hi {
		return fmt.Errorf("%d is not between %d and %d", n, b.lo, b.hi)
	}
	*b.v = n
	return nil
}

func (b *boundedInt) Type() string { return "int" }

// positiveDuration is a duration flag that refuses zero and negative values
// (guard.Policy would silently take its default for them).
type positiveDuration struct{ v *time.Duration }

func positive(v *time.Duration) *positiveDuration { return &positiveDuration{v} }

func (d *positiveDuration) String() string {
	if d.v == nil {
		return "0s"
	}
	return d.v.String()
}

func (d *positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 10m", s)
	}
	if v <= 0 {
		return fmt.Errorf("%v is not positive", v)
	}
	*d.v = v
	return nil
}

func (d *positiveDuration) Type() string { return "duration" }

// rateFlag is a calls-per-second flag that refuses zero, negative and
// non-finite values.
type rateFlag struct{ v *float64 }

func positiveRate(v *float64) *rateFlag { return &rateFlag{v} }

func (r *rateFlag) String() string {
	if r.v == nil {
		return "0"
	}
	return strconv.FormatFloat(*r.v, 'g', -1, 64)
}

func (r *rateFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("%q is not a number", s)
	}
	if v <= 0 {
		return fmt.Errorf("%v is not positive", v)
	}
	*r.v = v
	return nil
}

func (r *rateFlag) Type() string { return "float" }
