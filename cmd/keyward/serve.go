package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp"
	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/manage"
	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/keys"
	"github.com/keyward/keyward/storage"
)

// Compile-time checks that the concrete pieces fit the interfaces idp and
// keys declare.
var (
	_ idp.Store     = (*storage.DB)(nil)
	_ keys.Store    = (*storage.DB)(nil)
	_ idp.KeySource = (*keys.Manager)(nil)
)

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
	shutdownTimeout                       time.Duration
	throttleFlags                         // throttle_flags.go
	registration                          bool
}

func newServeCmd(a *app) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), cmd.ErrOrStderr(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&f.issuer, "issuer", "http://localhost:8080", "issuer URL: https, unless the host is localhost or 127.0.0.1 or --insecure-http is given")
	fl.BoolVar(&f.insecureHTTP, "insecure-http", false, "serve plain HTTP: allow an http issuer on a non-loopback host, and an https issuer without --tls-cert and without the X-Forwarded-Proto check (never in production)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve TLS with this certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "serve TLS with this private key (PEM)")
	fl.BoolVar(&f.noMigrate, "no-migrate", false, "do not migrate the database at start")
	fl.BoolVar(&f.demo, "demo", false, "on an empty database, create a demo client and user and print their credentials")
	f.kekFlags.register(fl)
	f.keyPolicyFlags.register(fl)
	fl.DurationVar(&f.accessTTL, "access-token-ttl", idp.DefaultAccessTokenTTL, "lifetime of access and ID tokens (30s to 1h)")
	fl.DurationVar(&f.refreshTTL, "refresh-token-ttl", idp.DefaultRefreshTokenTTL, "absolute lifetime of a login's refresh tokens")
	fl.DurationVar(&f.refreshIdleTTL, "refresh-token-idle-ttl", idp.DefaultRefreshTokenIdleTTL, "how long an unused refresh token lives")
	fl.Var(positive(&f.passwordRefreshTTL), "password-grant-refresh-token-ttl",
		"absolute lifetime of the refresh tokens of a password-grant login, at most --refresh-token-ttl (default: --refresh-token-ttl)")
	fl.Lookup("password-grant-refresh-token-ttl").DefValue = "" // it follows --refresh-token-ttl; not "0s"
	fl.StringSliceVar(&f.passwordForbiddenScopes, "password-grant-forbidden-scopes", nil,
		"comma-separated scopes the password grant never grants, even to a client registered for them (keyward:admin always); client_credentials still may")
	fl.DurationVar(&f.reuseWindow, "refresh-reuse-window", idp.DefaultRefreshReuseWindow, "a retry of the just-used refresh token within this window gets the same successor; 0s turns it off")
	fl.DurationVar(&f.auditRetention, "audit-retention", audit.DefaultRetention, "how long audit events are kept")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics (every metric, login failures by reason) on this address, for the operator's network only; without it there is no /metrics")
	fl.BoolVar(&f.publicMetrics, "public-metrics", false, "UNSAFE: also serve /metrics on the main listener, where anyone sees the Go version and the traffic (login failure reasons collapsed so they cannot tell accounts apart)")
	fl.StringSliceVar(&f.trustedProxies, "trusted-proxies", nil, "CIDRs of reverse proxies whose X-Forwarded-For is believed; with an https issuer and no --tls-cert, the only peers served, and only with X-Forwarded-Proto: https")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to let requests finish at shutdown")
	f.throttleFlags.register(fl)
	fl.BoolVar(&f.registration, "registration", false, "serve POST /account/register: anyone may create an account")
	return cmd
}

// checkIssuer requires https unless the host is loopback or --insecure-http.
func (f *serveFlags) checkIssuer() error {
	u, err := idp.ParseIssuer(f.issuer)
	if err != nil {
		return fmt.Errorf("--issuer: %w", err)
	}
	if u.Scheme == "https" || f.insecureHTTP {
		return nil
	}
	switch u.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		return nil
	}
	return fmt.Errorf("--issuer %s must be https (or pass --insecure-http for a test setup)", f.issuer)
}

// TLS modes of serve (TE-01), as logged at start.
const (
	tlsDirect    = "direct"    // --tls-cert: serve TLS itself; Go answers plain HTTP with a 400
	tlsForwarded = "forwarded" // https issuer behind a TLS-terminating proxy: idp.Config.RequireForwardedHTTPS
	tlsOff       = "off"       // http issuer (loopback) or --insecure-http: plain HTTP
)

// tlsMode decides how the token endpoint stays on TLS (TE-01). An https
// issuer without a certificate is served only to --trusted-proxies that send
// X-Forwarded-Proto: https, so without any trusted proxy nothing could reach
// it legitimately and serve refuses to start. Plain HTTP is served only on a
// loopback --addr (for a loopback issuer, the local default) or with
// --insecure-http.
func (f *serveFlags) tlsMode(proxies []netip.Prefix) (string, error) {
	u, err := idp.ParseIssuer(f.issuer)
	if err != nil {
		return "", fmt.Errorf("--issuer: %w", err)
	}
	switch {
	case f.tlsCert != "":
		return tlsDirect, nil
	case f.insecureHTTP:
		return tlsOff, nil
	case u.Scheme != "https" && !loopbackAddr(f.addr):
		return "", fmt.Errorf("--addr %s reaches beyond loopback, where the http issuer %s would serve tokens in clear: "+
			"use an https issuer (with --tls-cert or --trusted-proxies), or --insecure-http for a test setup", f.addr, f.issuer)
	case u.Scheme != "https":
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

func (a *app) serve(ctx context.Context, logw, out io.Writer, f serveFlags) error {
	if err := f.checkIssuer(); err != nil {
		return err
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	proxies, err := f.proxies()
	if err != nil {
		return err
	}
	mode, err := f.tlsMode(proxies)
	if err != nil {
		return err
	}
	if err := f.checkLifetimes(); err != nil {
		return err
	}
	forbidden, err := f.forbiddenScopes()
	if err != nil {
		return err
	}
	passwordRefreshTTL := f.passwordRefreshTTL
	if passwordRefreshTTL == 0 {
		passwordRefreshTTL = f.refreshTTL
	}
	policy, err := f.keyPolicy()
	if err != nil {
		return err
	}
	policy.TokenLifetime = f.accessTTL
	log := a.logger(logw)
	if mode == tlsOff && f.insecureHTTP {
		log.Warn("--insecure-http: the token endpoint is served over plain HTTP, without any TLS check; never in production")
	}

	db, err := a.openDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	warnSharedDatabase(log, a.database)
	if !f.noMigrate {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}

	kek, err := f.kekFlags.load(a, log)
	if err != nil {
		return err
	}
	km, err := keys.NewManager(ctx, db, kek, policy, log, time.Now)
	if err != nil {
		return err
	}

	var srv *idp.Server
	hasher, err := a.hasher(password.WithObserver(func(o password.Observation) {
		srv.Metrics().HashWaited(o.Wait)
	}))
	if err != nil {
		return err
	}
	if hasher.Peppered() {
		log.Info("password hashes are peppered (--password-pepper-file); older hashes are upgraded at each user's next login")
	}
	pwPolicy, err := a.policy()
	if err != nil {
		return err
	}
	reuse := f.reuseWindow
	if reuse == 0 {
		reuse = -1 // idp.Config: negative turns the window off, zero means the default
	}
	srv, err = idp.New(idp.Config{
		Issuer: f.issuer, Store: db, Keys: km, Log: log,
		JWKSMaxAge: policy.JWKSMaxAge, TrustedProxies: proxies, RequireForwardedHTTPS: mode == tlsForwarded,
		Passwords:      hasher,
		AccessTokenTTL: f.accessTTL, RefreshTokenTTL: f.refreshTTL, RefreshTokenIdleTTL: f.refreshIdleTTL,
		RefreshReuseWindow: reuse,
		AuditRetention:     f.auditRetention,
		KeyAges:            keyAges(km),
		HideMetrics:        !f.publicMetrics, // AD-09: /metrics only on --metrics-addr unless asked
		Throttle:           f.throttleFlags.policy(),
		KeyRotator:         km, // the admin API's /admin/v1/keys
		Policy:             pwPolicy, Registration: f.registration,

		PasswordRefreshTokenTTL: passwordRefreshTTL, PasswordForbiddenScopes: forbidden, // TE-16
	})
	if err != nil {
		return err
	}
	srv.Metrics().HashQueueFrom(func() int { return hasher.Stats().Queued })
	km.OnRotate(func(ctx context.Context, r keys.Rotation) {
		srv.Auditor().Record(ctx, audit.Event{Type: audit.KeyRotated, Actor: "schedule", Subject: r.Activated, Reason: "retired " + r.Retired})
	})
	go km.Run(ctx)
	go srv.Throttler().Run(ctx)
	go srv.Auditor().Run(ctx)
	go srv.RunTokenCleanup(ctx, 0)
	if f.metricsAddr != "" {
		if err := serveMetrics(ctx, f.metricsAddr, srv, log); err != nil {
			return err
		}
	}
	if f.publicMetrics {
		log.Warn("--public-metrics: /metrics is served on the main listener, to anyone who can reach it; prefer --metrics-addr")
	}

	hs := newHTTPServer(srv.Handler(), log)
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	if f.demo {
		if err := a.createDemo(ctx, db, out, f.issuer); err != nil {
			return err
		}
	}

	errc := make(chan error, 1)
	go func() {
		if mode == tlsDirect {
			hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			errc <- hs.ServeTLS(ln, f.tlsCert, f.tlsKey)
			return
		}
		errc <- hs.Serve(ln)
	}()
	log.Info("keyward serving", "addr", ln.Addr().String(), "issuer", f.issuer, "database", db.Dialect(), "tls", mode, "version", version)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.shutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	srv.Auditor().Flush() // the rows written behind answers (RecordAsync)
	return err
}

// checkLifetimes bounds the token lifetimes (TE-19: access tokens live an
// hour at most).
func (f *serveFlags) checkLifetimes() error {
	switch {
	case f.accessTTL < 30*time.Second || f.accessTTL > time.Hour:
		return fmt.Errorf("--access-token-ttl must be between 30s and 1h, got %v", f.accessTTL)
	case f.refreshTTL <= 0:
		return fmt.Errorf("--refresh-token-ttl must be positive, got %v", f.refreshTTL)
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

// serveMetrics serves /metrics on its own listener (AD-09: not on the
// public one) until ctx ends.
func serveMetrics(ctx context.Context, addr string, srv *idp.Server, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", srv.Metrics().Handler())
	hs := newHTTPServer(mux, log)
	go hs.Serve(ln)
	go func() {
		<-ctx.Done()
		hs.Close()
	}()
	log.Info("metrics serving", "addr", ln.Addr().String())
	return nil
}

// Demo registration, created only on an empty database.
const (
	demoClientID = "demo-app"
	demoUsername = "demo"
)

func (a *app) createDemo(ctx context.Context, db *storage.DB, out io.Writer, issuer string) error {
	n, err := db.CountUsers(ctx)
	if err != nil {
		return err
	}
	cs, err := db.Clients(ctx)
	if err != nil {
		return err
	}
	if n > 0 || len(cs) > 0 {
		fmt.Fprintln(out, "--demo: the database is not empty; no demo client or user created")
		return nil
	}
	c, secret, err := manage.NewClient(manage.ClientSpec{
		ID: demoClientID, Name: "Keyward demo",
		Grants:    []string{manage.GrantPassword, manage.GrantRefreshToken, manage.GrantClientCredentials},
		Scopes:    []string{"openid", "profile", "email", "api:read"},
		Audiences: []string{"api"},
	})
	if err != nil {
		return err
	}
	var b [15]byte
	rand.Read(b[:])
	pw := strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
	h, err := a.hasher()
	if err != nil {
		return err
	}
	hash, err := h.Hash(ctx, pw)
	if err != nil {
		return err
	}
	if err := db.CreateClient(ctx, &c); err != nil {
		return err
	}
	u := storage.User{Username: demoUsername, Email: "demo@example.com", EmailVerified: true, PasswordHash: hash}
	if err := db.CreateUser(ctx, &u); err != nil {
		return err
	}
	fmt.Fprintf(out, `Keyward demo credentials (shown once):
  client_id:     %s
  client_secret: %s
  username:      %s
  password:      %s

Get a token:
  curl -s -u '%s:%s' -d grant_type=password -d username=%s -d 'password=%s' -d 'scope=openid api:read' %s/oauth2/token

`, demoClientID, secret, demoUsername, pw, demoClientID, secret, demoUsername, pw, issuer)
	return nil
}

// newHTTPServer is an http.Server with the limits every Keyward listener
// keeps (AV-03, IN-02): a slow or oversized client is cut off, never held.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
