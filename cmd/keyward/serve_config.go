package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/login"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// serveFlags are serve's flags as given (or filled from KEYWARD_*
// variables); config checks them and turns them into a serveConfig.
type serveFlags struct {
	addr, issuer    string
	insecureHTTP    bool
	tlsCert, tlsKey string
	noMigrate, demo bool
	kekFlags
	keyPolicyFlags
	trustedProxies                        []string
	accessTTL, refreshTTL, refreshIdleTTL time.Duration
	passwordRefreshTTL                    time.Duration // 0: --refresh-token-ttl
	passwordForbiddenScopes               []string
	reuseWindow, auditRetention           time.Duration
	metricsAddr                           string
	publicMetrics                         bool
	shutdownTimeout, drainDelay           time.Duration
	throttleFlags                         // throttle_flags.go
	registration                          bool
	mailFlags                                           // mail_flags.go
	smtpURLOnCommandLine                  bool          // set by serveCmd: --smtp-url came as a flag, not KEYWARD_SMTP_URL
	publicURL                             string        // "" means --issuer
	resetTokenLifetime                    time.Duration // of password-reset links
	requireVerifiedEmail                  bool
	sessionIdle, sessionLifetime          time.Duration // browser login sessions (idp/login)
	signer                                string        // --signer: auto, go or openssl (signer.go)
	databasePool                          int           // --database-pool
}

// bindServeFlags defines serve's flags on fl and returns where they land.
func bindServeFlags(fl *pflag.FlagSet) *serveFlags {
	f := &serveFlags{}
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.issuer, "issuer", "http://localhost:8080", "issuer URL: https, unless the host is localhost or 127.0.0.1 or --insecure-http is given")
	fl.BoolVar(&f.insecureHTTP, "insecure-http", false, "serve plain HTTP: allow an http issuer on a non-loopback host, and an https issuer without --tls-cert and without the X-Forwarded-Proto check (never in production)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve TLS with this certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "serve TLS with this private key (PEM)")
	fl.BoolVar(&f.noMigrate, "no-migrate", false, "do not migrate the database at start")
	fl.IntVar(&f.databasePool, "database-pool", storage.DefaultPool, fmt.Sprintf("PostgreSQL connections serve opens at start and keeps open (%d or more); each replica takes this many of PostgreSQL's max_connections. SQLite ignores it", storage.MinPool))
	fl.BoolVar(&f.demo, "demo", false, "on an empty database, create a demo client and user and print their credentials")
	f.kekFlags.register(fl)
	f.keyPolicyFlags.register(fl)
	fl.DurationVar(&f.accessTTL, "access-token-ttl", oauth.DefaultAccessTokenTTL, "lifetime of access and ID tokens (30s to 1h)")
	fl.DurationVar(&f.refreshTTL, "refresh-token-ttl", oauth.DefaultRefreshTokenTTL, "absolute lifetime of a login's refresh tokens")
	fl.DurationVar(&f.refreshIdleTTL, "refresh-token-idle-ttl", oauth.DefaultRefreshTokenIdleTTL, "how long an unused refresh token lives")
	fl.DurationVar(&f.sessionIdle, "session-idle", login.DefaultIdle, "a browser login session ends after this long without use (1m to --session-lifetime)")
	fl.DurationVar(&f.sessionLifetime, "session-lifetime", login.DefaultLifetime, "a browser login session ends this long after the login in any case (at most 30 days)")
	fl.Var(positive(&f.passwordRefreshTTL), "password-grant-refresh-token-ttl",
		"absolute lifetime of the refresh tokens of a password-grant login, at most --refresh-token-ttl (default: --refresh-token-ttl)")
	fl.Lookup("password-grant-refresh-token-ttl").DefValue = "" // it follows --refresh-token-ttl; not "0s"
	fl.StringSliceVar(&f.passwordForbiddenScopes, "password-grant-forbidden-scopes", nil,
		"comma-separated scopes the password grant never grants, even to a client registered for them (keyward:admin always); client_credentials still may")
	fl.DurationVar(&f.reuseWindow, "refresh-reuse-window", oauth.DefaultRefreshReuseWindow, "a retry of the just-used refresh token within this window gets the same successor; 0s turns it off")
	fl.DurationVar(&f.auditRetention, "audit-retention", audit.DefaultRetention, "how long audit events are kept")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics (every metric, login failures by reason) on this address, for the operator's network only; without it there is no /metrics")
	fl.BoolVar(&f.publicMetrics, "public-metrics", false, "UNSAFE: also serve /metrics on the main listener, where anyone sees the Go version and the traffic (login failure reasons collapsed so they cannot tell accounts apart)")
	fl.StringSliceVar(&f.trustedProxies, "trusted-proxies", nil, "CIDRs of reverse proxies whose X-Forwarded-For is believed; with an https issuer and no --tls-cert, the only peers served, and only with X-Forwarded-Proto: https")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to let requests finish at shutdown")
	fl.DurationVar(&f.drainDelay, "drain-delay", 0, "at SIGTERM, how long /readyz answers 503 while everything else is still served, so load balancers stop sending requests before the listener closes (a second signal cuts it short)")
	f.throttleFlags.register(fl)
	fl.BoolVar(&f.registration, "registration", false, "serve POST /account/register: anyone may create an account")
	f.mailFlags.register(fl)
	fl.StringVar(&f.publicURL, "public-url", "", "absolute base URL of the links mailed to users (password reset, address verification), never taken from a request's Host (default: --issuer)")
	fl.DurationVar(&f.resetTokenLifetime, "reset-token-lifetime", manage.DefaultResetTokenLifetime, "how long a mailed password-reset link stays valid (1m to 24h)")
	fl.BoolVar(&f.requireVerifiedEmail, "require-verified-email", false, "refuse the password grant (as invalid_grant) to users whose e-mail address is not verified")
	fl.StringVar(&f.signer, "signer", signerAuto, "RS256 signer: auto (OpenSSL's libcrypto 3 when it loads, else Go's crypto/rsa), go, or openssl (refuse to start without it); docs/signer.md")
	return f
}

// serveConfig is everything serve needs, checked: serveFlags.config builds
// it before serve opens anything, and serve only wires it.
type serveConfig struct {
	addr            string // --addr
	tls             tlsSetup
	insecureHTTP    bool // --insecure-http: serve warns
	migrate         bool // not --no-migrate
	databasePool    int  // --database-pool
	demo            bool
	kek             kekSource
	keyPolicy       keys.Policy // TokenLifetime is --access-token-ttl
	metricsAddr     string      // "" serves no /metrics listener
	publicMetrics   bool
	shutdownTimeout time.Duration
	drainDelay      time.Duration // --drain-delay
	mail            mailSetup     // where account mail goes (mail_flags.go)
	signer          signerChoice  // --signer, resolved (signer.go)

	// server is idp.Config with every value the flags set; serve adds the
	// parts it opens and builds: Store, Keys, Log, Passwords, KeyAges,
	// KeyRotator, Mail.
	server idp.Config

	// passwords hashes and checks passwords with the --argon2-* flags,
	// --password-hash-ceiling and --password-pepper-file. It reports each
	// wait for a hashing slot to hashWaited, once serve sets it (the
	// hasher exists before the server whose metrics count the waits).
	passwords  *password.Hasher
	hashWaited func(time.Duration)
}

// tlsSetup is how serve keeps the token endpoint on TLS (TE-01).
type tlsSetup struct {
	mode      string // tlsDirect, tlsForwarded or tlsOff
	cert, key string // PEM files, with tlsDirect
}

// TLS modes of serve (TE-01), as logged at start.
const (
	tlsDirect    = "direct"    // --tls-cert: serve TLS itself; Go answers plain HTTP with a 400
	tlsForwarded = "forwarded" // https issuer behind a TLS-terminating proxy: idp.Config.RequireForwardedHTTPS
	tlsOff       = "off"       // http issuer (loopback) or --insecure-http: plain HTTP
)

// config checks serve's flags, with the shared ones a checked, and returns
// the configuration; an error names the flag at fault. It reads the files
// the flags name (--password-pepper-file, --password-blocklist) but opens
// nothing else: the database and the key-encryption key file are serve's.
func (f *serveFlags) config(a *app) (*serveConfig, error) {
	issuer, err := idp.ParseIssuer(f.issuer)
	if err != nil {
		return nil, fmt.Errorf("--issuer: %w", err)
	}
	if err := f.checkIssuer(issuer.Scheme, issuer.Hostname()); err != nil {
		return nil, err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	proxies, err := f.proxies()
	if err != nil {
		return nil, err
	}
	mode, err := f.tlsMode(issuer.Scheme, proxies)
	if err != nil {
		return nil, err
	}
	if err := f.checkLifetimes(); err != nil {
		return nil, err
	}
	forbidden, err := f.forbiddenScopes()
	if err != nil {
		return nil, err
	}
	if f.publicURL != "" {
		if _, err := idp.ParseIssuer(f.publicURL); err != nil {
			return nil, fmt.Errorf("--public-url: %w", err)
		}
	}
	if f.drainDelay < 0 || f.shutdownTimeout <= 0 {
		return nil, fmt.Errorf("--drain-delay must not be negative and --shutdown-timeout must be positive, got %v and %v", f.drainDelay, f.shutdownTimeout)
	}
	if f.databasePool < storage.MinPool {
		return nil, fmt.Errorf("--database-pool must be %d or more, got %d", storage.MinPool, f.databasePool)
	}
	if f.resetTokenLifetime < time.Minute || f.resetTokenLifetime > 24*time.Hour {
		return nil, errors.New("--reset-token-lifetime must be between 1m and 24h")
	}
	keyPolicy, err := f.keyPolicy()
	if err != nil {
		return nil, err
	}
	keyPolicy.TokenLifetime = f.accessTTL
	signer, err := chooseSigner(f.signer)
	if err != nil {
		return nil, err
	}
	keyPolicy.RSASigner = signer.rsaSigner()
	kek, err := f.kekFlags.source(a.database, a.origin("key-encryption-key"))
	if err != nil {
		return nil, err
	}
	mailCfg, err := f.mailFlags.config(a.database, f.smtpURLOnCommandLine)
	if err != nil {
		return nil, err
	}

	c := &serveConfig{
		addr:            f.addr,
		tls:             tlsSetup{mode: mode, cert: f.tlsCert, key: f.tlsKey},
		insecureHTTP:    f.insecureHTTP,
		migrate:         !f.noMigrate,
		databasePool:    f.databasePool,
		demo:            f.demo,
		kek:             kek,
		keyPolicy:       keyPolicy,
		metricsAddr:     f.metricsAddr,
		publicMetrics:   f.publicMetrics,
		shutdownTimeout: f.shutdownTimeout,
		drainDelay:      f.drainDelay,
		mail:            mailCfg,
		signer:          signer,
	}
	c.passwords, err = a.hasher(password.WithObserver(func(o password.Observation) {
		if c.hashWaited != nil {
			c.hashWaited(o.Wait)
		}
	}))
	if err != nil {
		return nil, err
	}
	pwPolicy, err := a.policy()
	if err != nil {
		return nil, err
	}
	passwordRefreshTTL := f.passwordRefreshTTL
	if passwordRefreshTTL == 0 {
		passwordRefreshTTL = f.refreshTTL
	}
	reuse := f.reuseWindow
	if reuse == 0 {
		reuse = -1 // idp.Config: negative turns the window off, zero means the default
	}
	c.server = idp.Config{
		Issuer:     f.issuer,
		JWKSMaxAge: keyPolicy.JWKSMaxAge, TrustedProxies: proxies, RequireForwardedHTTPS: mode == tlsForwarded,
		AccessTokenTTL: f.accessTTL, RefreshTokenTTL: f.refreshTTL, RefreshTokenIdleTTL: f.refreshIdleTTL,
		RefreshReuseWindow: reuse,
		AuditRetention:     f.auditRetention,
		HideMetrics:        !f.publicMetrics, // AD-09: /metrics only on --metrics-addr unless asked
		Throttle:           f.throttleFlags.policy(),
		Policy:             pwPolicy, Registration: f.registration,

		PasswordRefreshTokenTTL: passwordRefreshTTL, PasswordForbiddenScopes: forbidden, // TE-16

		PublicURL: f.publicURL, ResetTokenLifetime: f.resetTokenLifetime, RequireVerifiedEmail: f.requireVerifiedEmail,
		SessionIdle: f.sessionIdle, SessionLifetime: f.sessionLifetime,
	}
	return c, nil
}

// checkIssuer requires https unless the host is loopback or --insecure-http.
func (f *serveFlags) checkIssuer(scheme, host string) error {
	if scheme == "https" || f.insecureHTTP {
		return nil
	}
	switch host {
	case "localhost", "127.0.0.1", "::1":
		return nil
	}
	return fmt.Errorf("--issuer %s must be https (or pass --insecure-http for a test setup)", f.issuer)
}

// tlsMode decides how the token endpoint stays on TLS (TE-01). An https
// issuer without a certificate is served only to --trusted-proxies that send
// X-Forwarded-Proto: https, so without any trusted proxy nothing could reach
// it legitimately and serve refuses to start. Plain HTTP is served only on a
// loopback --addr (for a loopback issuer, the local default) or with
// --insecure-http.
func (f *serveFlags) tlsMode(scheme string, proxies []netip.Prefix) (string, error) {
	switch {
	case f.tlsCert != "":
		return tlsDirect, nil
	case f.insecureHTTP:
		return tlsOff, nil
	case scheme != "https" && !loopbackAddr(f.addr):
		return "", fmt.Errorf("--addr %s reaches beyond loopback, where the http issuer %s would serve tokens in clear: "+
			"use an https issuer (with --tls-cert or --trusted-proxies), or --insecure-http for a test setup", f.addr, f.issuer)
	case scheme != "https":
		return tlsOff, nil
	case len(proxies) == 0:
		return "", fmt.Errorf("--issuer %s is https but there is no --tls-cert: give --tls-cert and --tls-key, "+
			"or --trusted-proxies with the address of the TLS-terminating proxy (which must send X-Forwarded-Proto: https)", f.issuer)
	}
	return tlsForwarded, nil
}

// loopbackAddr reports whether a listen address only accepts local
// connections: localhost or a loopback IP, never the empty (any) host.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// proxies parses --trusted-proxies: CIDRs, or single addresses.
func (f *serveFlags) proxies() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range f.trustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR such as 10.0.0.0/8", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// checkLifetimes bounds the token lifetimes (TE-19: access tokens live an
// hour at most).
func (f *serveFlags) checkLifetimes() error {
	switch {
	case f.accessTTL < 30*time.Second || f.accessTTL > time.Hour:
		return fmt.Errorf("--access-token-ttl must be between 30s and 1h, got %v", f.accessTTL)
	case f.refreshTTL <= 0:
		return fmt.Errorf("--refresh-token-ttl must be positive, got %v", f.refreshTTL)
	case f.sessionIdle < time.Minute || f.sessionIdle > f.sessionLifetime || f.sessionLifetime > 30*24*time.Hour:
		return fmt.Errorf("--session-idle must be at least 1m and at most --session-lifetime, which is at most 720h; got %v and %v", f.sessionIdle, f.sessionLifetime)
	case f.refreshIdleTTL <= 0 || f.refreshIdleTTL > f.refreshTTL:
		return fmt.Errorf("--refresh-token-idle-ttl must be positive and at most --refresh-token-ttl, got %v", f.refreshIdleTTL)
	case f.passwordRefreshTTL > f.refreshTTL: // zero (not set) follows --refresh-token-ttl; the flag refuses negative ones
		return fmt.Errorf("--password-grant-refresh-token-ttl must be at most --refresh-token-ttl (%v), got %v", f.refreshTTL, f.passwordRefreshTTL)
	case f.reuseWindow < 0 || f.reuseWindow > time.Minute:
		return fmt.Errorf("--refresh-reuse-window must be between 0s (off) and 1m, got %v", f.reuseWindow)
	case f.auditRetention < time.Hour:
		return fmt.Errorf("--audit-retention must be at least 1h, got %v", f.auditRetention)
	}
	return nil
}

// forbiddenScopes checks --password-grant-forbidden-scopes: each entry,
// trimmed, must be a scope token (RFC 6749 §3.3); empty ones are skipped.
func (f *serveFlags) forbiddenScopes() ([]string, error) {
	var out []string
	for _, s := range f.passwordForbiddenScopes {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
			continue
		case !manage.ValidScopeToken(s):
			return nil, fmt.Errorf("--password-grant-forbidden-scopes: %q is not a scope (RFC 6749 §3.3 scope-token)", s)
		}
		out = append(out, s)
	}
	return out, nil
}
