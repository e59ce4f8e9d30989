package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/collectors"
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

func newServeCmd(a *app) *cobra.Command {
	return serveCmd(a, func(cmd *cobra.Command, c *serveConfig) error {
		return a.serve(cmd.Context(), cmd.ErrOrStderr(), cmd.OutOrStdout(), c)
	})
}

// serveCmd is the serve command, with its flags (serve_config.go); run gets
// the checked configuration. Tests pass a run that only keeps it.
func serveCmd(a *app, run func(cmd *cobra.Command, c *serveConfig) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Args:  cobra.NoArgs,
	}
	f := bindServeFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		f.smtpURLOnCommandLine = cmd.Flags().Changed("smtp-url") // bindEnv sets variables without marking them changed
		c, err := f.config(a)
		if err != nil {
			return err
		}
		return run(cmd, c)
	}
	return cmd
}

// serve opens the database and the signing keys, builds the server from c
// and runs its listeners until ctx ends. c is checked (serveFlags.config).
func (a *app) serve(ctx context.Context, logw, out io.Writer, c *serveConfig) error {
	log := a.logger(logw)
	if c.tls.mode == tlsOff && c.insecureHTTP {
		log.Warn("--insecure-http: the token endpoint is served over plain HTTP, without any TLS check; never in production")
	}

	// Clients are cached for a second: a change made elsewhere (another
	// replica, the CLI) reaches this server within it (docs/tokens.md).
	// PostgreSQL's connections are all opened now, before any load.
	db, err := a.openDB(ctx, storage.WithClientCacheTTL(storage.DefaultClientCacheTTL), storage.WithPool(c.databasePool))
	if err != nil {
		return err
	}
	defer db.Close()
	warnSharedDatabase(log, a.database)
	if c.migrate {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}

	kek, err := c.kek.load(log)
	if err != nil {
		return err
	}
	km, err := keys.NewManager(ctx, db, kek, c.keyPolicy, log, time.Now)
	if err != nil {
		return err
	}

	if c.passwords.Peppered() {
		log.Info("password hashes are peppered (--password-pepper-file); older hashes are upgraded at each user's next login")
	}
	sender, err := c.mail.open(log)
	if err != nil {
		return err
	}
	mailClosed := false
	defer func() { // an early return; the normal path closes it after the HTTP server stops
		if !mailClosed {
			closeMail(ctx, sender, time.Second)
		}
	}()

	cfg := c.server
	cfg.Store, cfg.Keys, cfg.Log = db, km, log
	cfg.Mail = sender
	cfg.Passwords = c.passwords
	cfg.SecretKey = kek // idp derives the keys of CSRF tokens, login cookies and TOTP sealing from it (HKDF)
	cfg.KeyAges = keyAges(km)
	cfg.KeyRotator = km // the admin API's /admin/v1/keys
	srv, err := idp.New(cfg)
	if err != nil {
		return err
	}
	if err := sender.Register(srv.Metrics().Registry()); err != nil {
		return err
	}
	if err := c.signer.register(srv.Metrics().Registry()); err != nil {
		return err
	}
	// go_sql_*{db_name="keyward"}: the connection pool (open, in use,
	// waits for a connection and their total time).
	if err := srv.Metrics().Registry().Register(collectors.NewDBStatsCollector(db.SQL().DB, "keyward")); err != nil {
		return err
	}
	c.signer.log(log, c.keyPolicy.Algorithm)
	c.hashWaited = srv.Metrics().HashWaited
	srv.Metrics().HashQueueFrom(func() int { return c.passwords.Stats().Queued })
	km.OnRotate(func(ctx context.Context, r keys.Rotation) {
		srv.Auditor().Record(ctx, audit.Event{Type: audit.KeyRotated, Actor: "schedule", Subject: r.Activated, Reason: "retired " + r.Retired})
	})
	// The background loops and the metrics listener outlive ctx (the first
	// signal) until the main listener has shut down: a draining server
	// still serves, and its writes and rotations go on.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	go km.Run(bg)
	go srv.Throttler().Run(bg)
	go srv.Auditor().Run(bg)
	go srv.OAuth().RunTokenCleanup(bg, 0)
	if l := srv.Login(); l != nil {
		go l.RunCleanup(bg, 0)
	}
	if c.metricsAddr != "" {
		if err := serveMetrics(bg, c.metricsAddr, srv, log); err != nil {
			return err
		}
	}
	if c.publicMetrics {
		log.Warn("--public-metrics: /metrics is served on the main listener, to anyone who can reach it; prefer --metrics-addr")
	}

	var certs *certReloader // --tls-cert: reloaded at SIGHUP
	if c.tls.mode == tlsDirect {
		if certs, err = newCertReloader(c.tls.cert, c.tls.key); err != nil {
			return err
		}
	}
	watchHangups(bg, log, certs)
	hs := newHTTPServer(srv.Handler(), log)
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	defer ln.Close()
	if c.demo {
		if err := createDemo(ctx, db, out, c.server.Issuer, c.passwords); err != nil {
			return err
		}
	}

	errc := make(chan error, 1)
	go func() {
		if certs != nil {
			hs.TLSConfig = certs.tlsConfig()
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	// What starting took (the hasher's calibration runs argon2id three
	// times, migrations, key loads) is garbage now: hand it back to the
	// system instead of holding it until the scavenger gets to it.
	debug.FreeOSMemory()
	log.Info("keyward serving", "addr", ln.Addr().String(), "issuer", c.server.Issuer, "database", db.Dialect(), "tls", c.tls.mode, "version", version)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	err = shutdown(ctx, log, c, srv, hs)
	mailClosed = true
	log.Info("shutdown: closing the mail queue")
	closeMail(ctx, sender, c.shutdownTimeout) // what the last answers queued
	log.Info("shutdown: flushing the audit queue")
	srv.Auditor().Flush() // the rows written behind answers (RecordAsync)
	log.Info("shutdown complete")
	return err
}

// shutdown drains srv and stops hs once ctx has ended: /readyz turns 503 at
// once, everything else is served for --drain-delay (cut short by a second
// signal), then the listener closes and in-flight requests get up to
// --shutdown-timeout to finish.
func shutdown(ctx context.Context, log *slog.Logger, c *serveConfig, srv *idp.Server, hs *http.Server) error {
	srv.Drain()
	log.Info("shutdown: draining, /readyz answers 503", "drain_delay", c.drainDelay.String())
	if c.drainDelay > 0 {
		t := time.NewTimer(c.drainDelay)
		select {
		case <-t.C:
		case <-secondSignal(ctx):
			t.Stop()
			log.Info("shutdown: second signal, drain delay cut short")
		}
	}
	log.Info("shutdown: closing the listener, finishing in-flight requests", "shutdown_timeout", c.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
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
	// demoSPAID is a public client of the authorization endpoint, for
	// examples/oidc-login (issue 15): PKCE, loopback redirect on any port.
	demoSPAID       = "demo-spa"
	demoSPARedirect = "http://127.0.0.1/callback"
)

func createDemo(ctx context.Context, db *storage.DB, out io.Writer, issuer string, h *password.Hasher) error {
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
	hash, err := h.Hash(ctx, pw)
	if err != nil {
		return err
	}
	if err := db.CreateClient(ctx, &c); err != nil {
		return err
	}
	spa, _, err := manage.NewClient(manage.ClientSpec{
		ID: demoSPAID, Name: "Keyward demo (browser sign-in)", Public: true,
		Grants:       []string{manage.GrantAuthorizationCode, manage.GrantRefreshToken},
		Scopes:       []string{"openid", "profile", "email", "api:read"},
		Audiences:    []string{"api"},
		RedirectURIs: []string{demoSPARedirect}, PostLogoutRedirectURIs: []string{demoSPARedirect},
	})
	if err != nil {
		return err
	}
	if err := db.CreateClient(ctx, &spa); err != nil {
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

Sign in through the browser (public client %s, authorization code + PKCE):
  go run ./examples/oidc-login -issuer %s

`, demoClientID, secret, demoUsername, pw, demoClientID, secret, demoUsername, pw, issuer, demoSPAID, issuer)
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
