package idp_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/idp"

	"github.com/keyward/keyward/idp/password"
	"github.com/keyward/keyward/internal/idptest"
	"github.com/keyward/keyward/storage"
	"github.com/keyward/keyward/storage/storagetest"
)

// Benchmarks go through the real HTTP stack on loopback with b.RunParallel
// and report requests per second; compare them with BenchmarkRSASign (the
// signing limit of the same cores) and BenchmarkArgon2Verify (the hashing
// limit). See docs/performance.md, "Token endpoint".

// BenchmarkRSASign is bare RSA-2048 PKCS#1 v1.5 signing over SHA-256 on all
// cores: the ceiling for anything that signs one token per request.
func BenchmarkRSASign(b *testing.B) {
	key := idptest.SharedTestKeys().PrivateKey()
	digest := sha256.Sum256([]byte("payload"))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	reportRate(b, "signs/s")
}

// defaultHash returns a hasher at the default parameters and its hash of
// idptest.AlicePassword, for the argon2id ceilings.
func defaultHash(b *testing.B) (*password.Hasher, string) {
	h, err := password.NewHasher(password.DefaultParams())
	if err != nil {
		b.Fatal(err)
	}
	enc, err := h.Hash(context.Background(), idptest.AlicePassword)
	if err != nil {
		b.Fatal(err)
	}
	return h, enc
}

// BenchmarkArgon2Verify is one argon2id verification at the default
// parameters on one core: cores ÷ this time is the password-grant ceiling.
func BenchmarkArgon2Verify(b *testing.B) {
	h, enc := defaultHash(b)
	b.ResetTimer()
	for b.Loop() {
		if ok, _, err := h.Verify(context.Background(), idptest.AlicePassword, enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// benchBackends are SQLite, PostgreSQL, and PostgreSQL with lib/pq's
// binary_parameters, which sends a parameterised query in one round trip
// instead of two (prepare, then execute).
func benchBackends() []storagetest.Backend {
	pg := storagetest.Backends[1]
	return append(storagetest.Backends[:2:2], storagetest.Backend{
		Name: "PostgresBinaryParams",
		DSN:  func(t testing.TB) string { return pg.DSN(t) + "&binary_parameters=yes" },
	})
}

// benchParallelism × GOMAXPROCS clients send at once, as many clients of a
// busy server would, so the cores stay busy while a request waits on the
// database.
const benchParallelism = 4

func benchEnv(b *testing.B, be storagetest.Backend, change ...func(*idp.Config)) *idptest.Env {
	change = append(change, func(c *idp.Config) { c.Log = slog.New(slog.DiscardHandler) })
	return idptest.New(b, be, change...)
}

// poster posts forms to the token endpoint over kept-alive connections.
type poster struct {
	c    *http.Client
	url  string
	auth string
}

func newPoster(e *idptest.Env, client string) *poster {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}
	return &poster{c: &http.Client{Transport: tr}, url: e.URL + "/oauth2/token", auth: e.Basic(client)}
}

func (p *poster) post(b *testing.B, form string) map[string]any {
	req, _ := http.NewRequest(http.MethodPost, p.url, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", p.auth)
	resp, err := p.c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%d %s", resp.StatusCode, body)
	}
	var out map[string]any
	json.Unmarshal(body, &out)
	return out
}

func reportRate(b *testing.B, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, unit)
	}
}

// BenchmarkClientCredentials: one client lookup and one signature per request.
func BenchmarkClientCredentials(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.Name, func(b *testing.B) {
			e := benchEnv(b, be)
			p := newPoster(e, "CC")
			form := idptest.CCForm("scope", "read").Encode()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.post(b, form)
				}
			})
			reportRate(b, "req/s")
		})
	}
}

// BenchmarkRefresh: each goroutine rotates its own chain; every request is
// one rotation transaction and one signature.
func BenchmarkRefresh(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.Name, func(b *testing.B) {
			e := benchEnv(b, be)
			p := newPoster(e, "C1")
			login := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {idptest.AlicePassword}, "scope": {"read"}}.Encode()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rt := p.post(b, login)["refresh_token"].(string)
				for pb.Next() {
					rt = p.post(b, idptest.RefreshForm(rt).Encode())["refresh_token"].(string)
				}
			})
			reportRate(b, "req/s")
		})
	}
}

// BenchmarkPasswordGrant: the password grant at the default argon2id
// parameters, with an ID token and a refresh family per login, on SQLite.
// "Default" is the hasher's default concurrency (one hash per core);
// "TwoPerCore" allows 2 × GOMAXPROCS, the measurement behind that default.
func BenchmarkPasswordGrant(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []password.Option
	}{
		{"Default", nil},
		{"TwoPerCore", []password.Option{password.WithMaxConcurrent(2 * runtime.GOMAXPROCS(0))}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, err := password.NewHasher(password.DefaultParams(), bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			e := benchEnv(b, storagetest.Backends[0], func(c *idp.Config) { c.Passwords = h })
			enc, err := h.Hash(context.Background(), idptest.AlicePassword)
			if err != nil {
				b.Fatal(err)
			}
			u := &storage.User{Username: "carol", PasswordHash: enc}
			if err := e.DB.CreateUser(context.Background(), u); err != nil {
				b.Fatal(err)
			}
			p := newPoster(e, "C1")
			form := idptest.PasswordForm("carol", idptest.AlicePassword, "scope", "openid read").Encode()
			b.SetParallelism(benchParallelism)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.post(b, form)
				}
			})
			reportRate(b, "req/s")
		})
	}
}

// BenchmarkArgon2VerifyParallel is the same verification on all cores at
// once: what the cores really deliver when hashes share memory bandwidth.
func BenchmarkArgon2VerifyParallel(b *testing.B) {
	h, enc := defaultHash(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, _, err := h.Verify(context.Background(), idptest.AlicePassword, enc); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	reportRate(b, "verifies/s")
}

// burst runs op perBurst times over workers goroutines and returns the rate
// in ops per second.
func burst(workers, perBurst int, op func()) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(perBurst) {
				op()
			}
		})
	}
	wg.Wait()
	return float64(perBurst) / time.Since(start).Seconds()
}

// median returns the middle of xs (sorting it).
func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// rsaSigner returns one bare RSA-2048 PKCS#1 v1.5 signature as a func.
func rsaSigner(b *testing.B) func() {
	key := idptest.SharedTestKeys().PrivateKey()
	digest := sha256.Sum256([]byte("payload"))
	return func() {
		if _, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientCredentialsVsRSA alternates, within one benchmark, a burst
// of bare RSA signatures on all cores and a burst of client_credentials
// requests through the full stack, and reports the median of their rate
// ratios. Measuring both in the same seconds keeps a noisy, shared machine
// from faking or hiding the result (issue: at least 0.70).
func BenchmarkClientCredentialsVsRSA(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.Name, func(b *testing.B) {
			e := benchEnv(b, be)
			p := newPoster(e, "CC")
			form := idptest.CCForm("scope", "read").Encode()
			vsRSA(b, func() { p.post(b, form) })
		})
	}
}

// BenchmarkRefreshVsRSA is BenchmarkClientCredentialsVsRSA for the
// refresh_token grant: each request rotates one of 8 chains (one per
// concurrent client), a write transaction and one signature.
func BenchmarkRefreshVsRSA(b *testing.B) {
	for _, be := range benchBackends() {
		b.Run(be.Name, func(b *testing.B) {
			e := benchEnv(b, be)
			p := newPoster(e, "C1")
			login := idptest.PasswordForm("alice", idptest.AlicePassword, "scope", "read").Encode()
			chains := make(chan string, benchParallelism*runtime.GOMAXPROCS(0))
			for range cap(chains) {
				chains <- p.post(b, login)["refresh_token"].(string)
			}
			vsRSA(b, func() {
				rt := <-chains
				chains <- p.post(b, idptest.RefreshForm(rt).Encode())["refresh_token"].(string)
			})
		})
	}
}

// vsRSA alternates bursts of bare RSA signatures on all cores and bursts of
// request from benchParallelism × GOMAXPROCS clients, and reports the
// median ratio of their rates.
func vsRSA(b *testing.B, request func()) {
	sign := rsaSigner(b)
	const perBurst = 64
	var ratios []float64
	for b.Loop() {
		limit := burst(runtime.GOMAXPROCS(0), perBurst, sign)
		got := burst(benchParallelism*runtime.GOMAXPROCS(0), perBurst, request)
		ratios = append(ratios, got/limit)
	}
	b.ReportMetric(median(ratios), "ratio")
}

// BenchmarkPasswordGrantVsArgon2 alternates, within one benchmark, the
// machine's limits and a burst of password grants through the full stack
// on SQLite with the default hasher, and reports the median ratios of the
// rounds:
//
//   - ratio-argon2: grants/s ÷ (cores ÷ one argon2id verify), the issue's
//     figure (target 0.90), the verify timed on one core while the others
//     idle;
//   - ratio-limit: grants/s ÷ the most grants the cores could complete if
//     the server did nothing but the grant's own cryptography: one verify
//     per grant at the rate all cores reach verifying at once, plus the
//     response's RSA signatures (one for the access token, two with an ID
//     token), that is 1 ÷ (1 ÷ verifies/s + signatures ÷ signs/s).
//
// A grant burst is 256 requests from 8 concurrent clients: shorter bursts
// measure their own ramp-up and tail, not the server.
func BenchmarkPasswordGrantVsArgon2(b *testing.B) {
	for _, sc := range []struct {
		name, scope string
		sigs        float64
	}{
		{"AccessToken", "read", 1},
		{"WithIDToken", "openid read", 2},
	} {
		b.Run(sc.name, func(b *testing.B) {
			h, enc := defaultHash(b)
			e := benchEnv(b, storagetest.Backends[0], func(c *idp.Config) { c.Passwords = h })
			if err := e.DB.CreateUser(context.Background(), &storage.User{Username: "carol", PasswordHash: enc}); err != nil {
				b.Fatal(err)
			}
			p := newPoster(e, "C1")
			form := idptest.PasswordForm("carol", idptest.AlicePassword, "scope", sc.scope).Encode()
			verify := func() {
				if ok, _, err := h.Verify(context.Background(), idptest.AlicePassword, enc); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
			sign := rsaSigner(b)
			procs := runtime.GOMAXPROCS(0)
			var argon, full []float64
			for b.Loop() {
				oneCore := burst(1, 4, verify)
				allCores := burst(procs, 16*procs, verify)
				signs := burst(procs, 16*procs, sign)
				got := burst(benchParallelism*procs, 256, func() { p.post(b, form) })
				argon = append(argon, got/(float64(procs)*oneCore))
				full = append(full, got*(1/allCores+sc.sigs/signs))
			}
			b.ReportMetric(median(argon), "ratio-argon2")
			b.ReportMetric(median(full), "ratio-limit")
		})
	}
}
