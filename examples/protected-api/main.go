// Command protected-api is a small resource server that accepts Keyward access tokens
// with package verify and nothing else of Keyward:
//
//	go run ./examples/protected-api --issuer http://localhost:8080 --audience api
//
// GET /protected answers any valid token; GET /orders also needs the scope api:read.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/keyward/keyward/verify"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "protected-api:", err)
		os.Exit(1)
	}
}

// run parses args, builds the verifier and serves until ctx is done, logging JSON to
// logw. It listens before it logs "protected-api listening" with the address, so
// --addr 127.0.0.1:0 works (tests read the port from that line).
func run(ctx context.Context, args []string, logw io.Writer) error {
	fs := flag.NewFlagSet("protected-api", flag.ContinueOnError)
	issuer := fs.String("issuer", envOr("KEYWARD_ISSUER", "http://localhost:8080"), "issuer URL, compared exactly with iss (env KEYWARD_ISSUER)")
	audience := fs.String("audience", envOr("API_AUDIENCE", "api"), "this API's audience (env API_AUDIENCE)")
	addr := fs.String("addr", envOr("API_ADDR", "127.0.0.1:9090"), "listen address (env API_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logw, nil))

	v, err := verify.New(ctx, verify.Config{
		Issuer:   *issuer,
		Audience: *audience,
		OnError:  func(err error) { log.Warn("jwks refresh failed", "err", err) },
	})
	if err != nil {
		return fmt.Errorf("start verifier: %w", err)
	}
	defer v.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           routes(v),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("protected-api listening", "addr", ln.Addr().String(), "issuer", *issuer, "audience", *audience)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// routes binds the API: every route sits behind v.Middleware; /orders also needs api:read.
func routes(v *verify.Verifier) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /protected", v.Middleware(http.HandlerFunc(protected)))
	mux.Handle("GET /orders", v.Middleware(verify.RequireScope("api:read")(http.HandlerFunc(orders))))
	return mux
}

// protected is the classic "/protected" route: it greets the token's subject.
func protected(w http.ResponseWriter, r *http.Request) {
	c, _ := verify.ClaimsFrom(r.Context())
	writeJSON(w, map[string]string{"message": "Protected resource!", "sub": c.Subject})
}

// orders stands for a resource that needs a scope.
func orders(w http.ResponseWriter, r *http.Request) {
	c, _ := verify.ClaimsFrom(r.Context())
	writeJSON(w, map[string]any{
		"sub":    c.Subject,
		"orders": []map[string]any{{"id": "o-1001", "total": "12.50"}, {"id": "o-1002", "total": "7.00"}},
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
