package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// The process's signals (docs/operations.md, "Draining and signals"):
// the first SIGINT or SIGTERM ends the command's context, which serve
// answers by draining and shutting down; a second one cuts serve's
// --drain-delay short; a third, no longer caught, ends the process at
// once. SIGHUP reloads serve's TLS certificate (certReloader).

// againKey is the context key of the channel closed at the second signal.
type againKey struct{}

// signalContext returns a context ended by the first SIGINT or SIGTERM;
// secondSignal(ctx) is closed by the second. stop releases the signals.
func signalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	again := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		defer signal.Stop(sigs)
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			close(again)
		case <-done:
		}
	}()
	ctx = context.WithValue(ctx, againKey{}, (<-chan struct{})(again))
	return ctx, func() {
		close(done)
		cancel()
	}
}

// secondSignal is closed when a second SIGINT or SIGTERM arrives after the
// one that ended ctx; nil (never ready) for a context not from
// signalContext, as in tests that run serve in-process.
func secondSignal(ctx context.Context) <-chan struct{} {
	c, _ := ctx.Value(againKey{}).(<-chan struct{})
	return c
}

// certReloader serves the certificate of --tls-cert and --tls-key through
// tls.Config.GetCertificate and reloads both files on demand (SIGHUP): new
// handshakes get the new certificate, open connections keep theirs, and a
// reload that fails leaves the previous certificate in place.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// newCertReloader loads the certificate and key, or fails naming the flags.
func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads both files again; on error the current certificate stays.
func (r *certReloader) reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("load --tls-cert and --tls-key: %w", err)
	}
	r.cert.Store(&c)
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// tlsConfig is the TLS configuration of serve's listener (TLS 1.2 or newer).
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
}

// watchHangups handles SIGHUP until ctx ends: with r (serve terminates TLS
// itself) it reloads the certificate, logging the outcome; without, it
// logs that there is nothing to reload. Either way SIGHUP no longer ends
// the process. It starts catching SIGHUP before it returns.
func watchHangups(ctx context.Context, log *slog.Logger, r *certReloader) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if r == nil {
				log.Info("SIGHUP ignored: no --tls-cert to reload (TLS is terminated elsewhere or not used)")
				continue
			}
			if err := r.reload(); err != nil {
				log.Error("SIGHUP: TLS certificate not reloaded, still serving the previous one", "err", err)
				continue
			}
			attrs := []any{"cert", r.certFile}
			if leaf := r.cert.Load().Leaf; leaf != nil {
				attrs = append(attrs, "not_after", leaf.NotAfter, "serial", leaf.SerialNumber.String())
			}
			log.Info("SIGHUP: TLS certificate reloaded", attrs...)
		}
	}()
}
