package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/idp/guard"
	"github.com/keyward/keyward/idp/oauth"
	"github.com/keyward/keyward/keys"
)

// serveConfigOf runs the real root command and serve's real flags with args,
// after setting env, and returns the configuration serve would get: the
// stand-in serve keeps it instead of opening anything.
func serveConfigOf(t *testing.T, env map[string]string, args ...string) (*serveConfig, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	a, root := newApp()
	var got *serveConfig
	root.AddCommand(serveCmd(a, func(_ *cobra.Command, c *serveConfig) error {
		got = c
		return nil
	}))
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	root.SetArgs(append([]string{"serve"}, args...))
	err := root.ExecuteContext(t.Context())
	if err == nil && got == nil {
		t.Fatal("serve ran without a configuration")
	}
	return got, err
}

// writeFile writes content to name in a fresh directory and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeConfigDefaults: serve with no flags and no KEYWARD_* variables
// gets the documented defaults.
func TestServeConfigDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	c, err := serveConfigOf(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.server
	checks := []struct {
		name      string
		got, want any
	}{
		{"addr", c.addr, "127.0.0.1:8080"},
		{"tls", c.tls, tlsSetup{mode: tlsOff}},
		{"migrate", c.migrate, true},
		{"demo", c.demo, false},
		{"kek", c.kek, kekSource{sqlitePath: "keyward.db"}},
		{"metrics addr", c.metricsAddr, ""},
		{"shutdown timeout", c.shutdownTimeout, 15 * time.Second},
		{"issuer", s.Issuer, "http://localhost:8080"},
		{"access token ttl", s.AccessTokenTTL, oauth.DefaultAccessTokenTTL},
		{"refresh token ttl", s.RefreshTokenTTL, oauth.DefaultRefreshTokenTTL},
		{"refresh idle ttl", s.RefreshTokenIdleTTL, oauth.DefaultRefreshTokenIdleTTL},
		{"password-grant refresh ttl follows --refresh-token-ttl", s.PasswordRefreshTokenTTL, oauth.DefaultRefreshTokenTTL},
		{"forbidden scopes", len(s.PasswordForbiddenScopes), 0},
		{"reuse window", s.RefreshReuseWindow, oauth.DefaultRefreshReuseWindow},
		{"audit retention", s.AuditRetention, audit.DefaultRetention},
		{"metrics hidden", s.HideMetrics, true},
		{"throttle", s.Throttle, guard.DefaultPolicy()},
		{"trusted proxies", len(s.TrustedProxies), 0},
		{"forwarded https", s.RequireForwardedHTTPS, false},
		{"registration", s.Registration, false},
		{"public url follows the issuer", s.PublicURL, ""},
		{"reset token lifetime", s.ResetTokenLifetime, 30 * time.Minute},
		{"verified email not required", s.RequireVerifiedEmail, false},
		{"password min length", s.Policy.MinLength, 15},
		{"key size", c.keyPolicy.KeySize, keys.DefaultKeySize},
		{"rotation period", c.keyPolicy.RotationPeriod, keys.DefaultRotationPeriod},
		{"key token lifetime", c.keyPolicy.TokenLifetime, oauth.DefaultAccessTokenTTL},
		{"jwks max-age", s.JWKSMaxAge, keys.DefaultJWKSMaxAge},
		{"peppered", c.passwords.Peppered(), false},
		{"store left to serve", s.Store, nil},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) != 0 {
		t.Errorf("building the configuration created %v", entries)
	}
}

// TestServeConfigValues: good values, from flags or KEYWARD_* variables,
// land in the typed configuration; a flag wins over its variable, and a
// variable whose flag is given is not even parsed.
func TestServeConfigValues(t *testing.T) {
	kek := keys.NewKEK()
	kek64 := base64.StdEncoding.EncodeToString(kek)
	pepper := writeFile(t, "pepper", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))
	kekFile := writeFile(t, "kek", kek64)
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c *serveConfig)
	}{
		{"shortest and longest access token", nil, []string{"--access-token-ttl", "30s"}, func(t *testing.T, c *serveConfig) {
			if c.server.AccessTokenTTL != 30*time.Second || c.keyPolicy.TokenLifetime != 30*time.Second {
				t.Errorf("access token ttl %v, key policy token lifetime %v", c.server.AccessTokenTTL, c.keyPolicy.TokenLifetime)
			}
		}},
		{"access token of an hour", nil, []string{"--access-token-ttl", "1h"}, func(t *testing.T, c *serveConfig) {
			if c.server.AccessTokenTTL != time.Hour {
				t.Errorf("access token ttl %v", c.server.AccessTokenTTL)
			}
		}},
		{"reuse window 0s turns it off", nil, []string{"--refresh-reuse-window", "0s"}, func(t *testing.T, c *serveConfig) {
			if c.server.RefreshReuseWindow >= 0 {
				t.Errorf("reuse window %v, want negative (off)", c.server.RefreshReuseWindow)
			}
		}},
		{"password-grant refresh ttl", nil, []string{"--refresh-token-ttl", "48h", "--refresh-token-idle-ttl", "1h", "--password-grant-refresh-token-ttl", "24h"}, func(t *testing.T, c *serveConfig) {
			if c.server.PasswordRefreshTokenTTL != 24*time.Hour || c.server.RefreshTokenTTL != 48*time.Hour || c.server.RefreshTokenIdleTTL != time.Hour {
				t.Errorf("password-grant %v, refresh %v, idle %v", c.server.PasswordRefreshTokenTTL, c.server.RefreshTokenTTL, c.server.RefreshTokenIdleTTL)
			}
		}},
		{"forbidden scopes trimmed, empty ones skipped", nil, []string{"--password-grant-forbidden-scopes", " api:write,,admin "}, func(t *testing.T, c *serveConfig) {
			if want := []string{"api:write", "admin"}; !reflect.DeepEqual(c.server.PasswordForbiddenScopes, want) {
				t.Errorf("forbidden scopes %q, want %q", c.server.PasswordForbiddenScopes, want)
			}
		}},
		{"https behind trusted proxies", nil, []string{"--issuer", "https://id.example.test", "--trusted-proxies", "10.1.2.3/8, 192.0.2.7"}, func(t *testing.T, c *serveConfig) {
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}
			if !reflect.DeepEqual(c.server.TrustedProxies, want) || c.tls.mode != tlsForwarded || !c.server.RequireForwardedHTTPS {
				t.Errorf("proxies %v, tls %v, forwarded https %v", c.server.TrustedProxies, c.tls, c.server.RequireForwardedHTTPS)
			}
		}},
		{"https with a certificate", nil, []string{"--issuer", "https://id.example.test", "--addr", ":8443", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, func(t *testing.T, c *serveConfig) {
			if c.tls != (tlsSetup{mode: tlsDirect, cert: "c.pem", key: "k.pem"}) || c.server.RequireForwardedHTTPS || c.addr != ":8443" {
				t.Errorf("tls %v, forwarded https %v, addr %s", c.tls, c.server.RequireForwardedHTTPS, c.addr)
			}
		}},
		{"plain HTTP opted into", nil, []string{"--issuer", "http://id.example.test", "--addr", ":8080", "--insecure-http"}, func(t *testing.T, c *serveConfig) {
			if c.tls.mode != tlsOff || !c.insecureHTTP {
				t.Errorf("tls %v, insecure %v", c.tls, c.insecureHTTP)
			}
		}},
		{"IPv6 loopback issuer and address", nil, []string{"--issuer", "http://[::1]:8080", "--addr", "[::1]:8080"}, func(t *testing.T, c *serveConfig) {
			if c.tls.mode != tlsOff || c.insecureHTTP {
				t.Errorf("tls %v, insecure %v", c.tls, c.insecureHTTP)
			}
		}},
		{"throttle limits", nil, []string{"--login-free-failures", "99", "--login-backoff-base", "2s", "--introspect-revoke-rate", "2.5", "--client-auth-limit", "7"}, func(t *testing.T, c *serveConfig) {
			p := c.server.Throttle
			if p.FreeFailures != 99 || p.BaseDelay != 2*time.Second || p.CallerRate != 2.5 || p.ClientFailures != 7 {
				t.Errorf("throttle %+v", p)
			}
		}},
		{"key policy", nil, []string{"--key-size", "3072", "--key-rotation-period", "1h", "--jwks-max-age", "2m"}, func(t *testing.T, c *serveConfig) {
			if c.keyPolicy.KeySize != 3072 || c.keyPolicy.RotationPeriod != time.Hour || c.keyPolicy.JWKSMaxAge != 2*time.Minute || c.server.JWKSMaxAge != 2*time.Minute {
				t.Errorf("key policy %+v, server JWKS max-age %v", c.keyPolicy, c.server.JWKSMaxAge)
			}
		}},
		{"key-encryption key from the environment", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY": kek64}, nil, func(t *testing.T, c *serveConfig) {
			if !bytes.Equal(c.kek.key, kek) || c.kek.file != "" {
				t.Errorf("kek source %+v", c.kek)
			}
		}},
		{"PostgreSQL with a key-encryption key file", nil, []string{"--database", "postgres://nobody@127.0.0.1:1/none", "--key-encryption-key-file", kekFile}, func(t *testing.T, c *serveConfig) {
			if !reflect.DeepEqual(c.kek, kekSource{file: kekFile}) {
				t.Errorf("kek source %+v", c.kek)
			}
		}},
		{"peppered hasher", nil, []string{"--password-pepper-file", pepper}, func(t *testing.T, c *serveConfig) {
			if !c.passwords.Peppered() {
				t.Error("the hasher has no pepper")
			}
		}},
		{"account mail", map[string]string{"KEYWARD_PUBLIC_URL": "https://accounts.example.test"}, []string{"--reset-token-lifetime", "10m", "--require-verified-email"}, func(t *testing.T, c *serveConfig) {
			if c.server.PublicURL != "https://accounts.example.test" || c.server.ResetTokenLifetime != 10*time.Minute || !c.server.RequireVerifiedEmail {
				t.Errorf("public url %q, reset lifetime %v, require verified %v", c.server.PublicURL, c.server.ResetTokenLifetime, c.server.RequireVerifiedEmail)
			}
		}},
		{"password policy", nil, []string{"--password-min-length", "20", "--password-blocklist", writeFile(t, "blocked", "hunter2hunter2\n")}, func(t *testing.T, c *serveConfig) {
			if c.server.Policy.MinLength != 20 || len(c.server.Policy.Blocklists) != 2 {
				t.Errorf("policy min length %d, %d blocklists", c.server.Policy.MinLength, len(c.server.Policy.Blocklists))
			}
		}},
		{"switches", nil, []string{"--no-migrate", "--demo", "--registration", "--public-metrics", "--metrics-addr", "127.0.0.1:9090", "--shutdown-timeout", "3s"}, func(t *testing.T, c *serveConfig) {
			if c.migrate || !c.demo || !c.server.Registration || c.server.HideMetrics || !c.publicMetrics || c.metricsAddr != "127.0.0.1:9090" || c.shutdownTimeout != 3*time.Second {
				t.Errorf("config %+v", c)
			}
		}},

		// Environment against flags.
		{"variable sets a duration", map[string]string{"KEYWARD_ACCESS_TOKEN_TTL": "20m"}, nil, func(t *testing.T, c *serveConfig) {
			if c.server.AccessTokenTTL != 20*time.Minute {
				t.Errorf("access token ttl %v, want 20m from KEYWARD_ACCESS_TOKEN_TTL", c.server.AccessTokenTTL)
			}
		}},
		{"flag wins over its variable", map[string]string{"KEYWARD_ACCESS_TOKEN_TTL": "20m"}, []string{"--access-token-ttl", "10m"}, func(t *testing.T, c *serveConfig) {
			if c.server.AccessTokenTTL != 10*time.Minute {
				t.Errorf("access token ttl %v, want the flag's 10m", c.server.AccessTokenTTL)
			}
		}},
		{"variable of a given flag is not parsed", map[string]string{"KEYWARD_ACCESS_TOKEN_TTL": "soon"}, []string{"--access-token-ttl", "10m"}, func(t *testing.T, c *serveConfig) {
			if c.server.AccessTokenTTL != 10*time.Minute {
				t.Errorf("access token ttl %v", c.server.AccessTokenTTL)
			}
		}},
		{"list variable split at commas", map[string]string{"KEYWARD_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.1", "KEYWARD_ISSUER": "https://id.example.test"}, nil, func(t *testing.T, c *serveConfig) {
			if len(c.server.TrustedProxies) != 2 || c.server.Issuer != "https://id.example.test" || c.tls.mode != tlsForwarded {
				t.Errorf("proxies %v, issuer %s, tls %v", c.server.TrustedProxies, c.server.Issuer, c.tls)
			}
		}},
		{"list flag wins over its variable", map[string]string{"KEYWARD_PASSWORD_GRANT_FORBIDDEN_SCOPES": "a,b"}, []string{"--password-grant-forbidden-scopes", "c"}, func(t *testing.T, c *serveConfig) {
			if !reflect.DeepEqual(c.server.PasswordForbiddenScopes, []string{"c"}) {
				t.Errorf("forbidden scopes %q", c.server.PasswordForbiddenScopes)
			}
		}},
		{"boolean variables", map[string]string{"KEYWARD_NO_MIGRATE": "true", "KEYWARD_REGISTRATION": "1"}, nil, func(t *testing.T, c *serveConfig) {
			if c.migrate || !c.server.Registration {
				t.Errorf("migrate %v, registration %v", c.migrate, c.server.Registration)
			}
		}},
		{"shared flag from its variable", map[string]string{"KEYWARD_PASSWORD_MIN_LENGTH": "20"}, nil, func(t *testing.T, c *serveConfig) {
			if c.server.Policy.MinLength != 20 {
				t.Errorf("min length %d", c.server.Policy.MinLength)
			}
		}},
		{"shared flag wins over its variable", map[string]string{"KEYWARD_PASSWORD_MIN_LENGTH": "20"}, []string{"--password-min-length", "16"}, func(t *testing.T, c *serveConfig) {
			if c.server.Policy.MinLength != 16 {
				t.Errorf("min length %d", c.server.Policy.MinLength)
			}
		}},
		{"throttle limit from its variable", map[string]string{"KEYWARD_LOGIN_ACCOUNT_BUDGET": "3", "KEYWARD_INTROSPECT_REVOKE_RATE": "0.5"}, nil, func(t *testing.T, c *serveConfig) {
			if c.server.Throttle.AccountFreeFailures != 3 || c.server.Throttle.CallerRate != 0.5 {
				t.Errorf("throttle %+v", c.server.Throttle)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			c, err := serveConfigOf(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// TestServeConfigRefused: every bad value, from a flag or a KEYWARD_*
// variable, is refused with the message operators know, naming the flag
// (or variable) at fault and never repeating a secret.
func TestServeConfigRefused(t *testing.T) {
	kek64 := base64.StdEncoding.EncodeToString(keys.NewKEK())
	shortPepper := "c2hvcnQ=" // base64 of 5 bytes
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		// The flags every command shares.
		{"output", nil, []string{"-o", "xml"}, `--output must be table or json, not "xml"`},
		{"log format", nil, []string{"--log-format", "xml"}, `--log-format must be json or text, not "xml"`},
		{"log level", nil, []string{"--log-level", "loud"}, `--log-level must be debug, info, warn or error, not "loud"`},
		{"password min length", nil, []string{"--password-min-length", "7"}, "--password-min-length must be at least 8"},
		{"password min length above the cap", nil, []string{"--password-min-length", "100000"}, "--password-min-length: new password policy: minimum length 100000 above"},
		{"argon2 memory", nil, []string{"--argon2-memory", "19455"}, "--argon2-memory must be at least 19456 KiB, --argon2-time at least 2 and --argon2-threads 1 (OWASP, PW-01)"},
		{"argon2 time", nil, []string{"--argon2-time", "1"}, "--argon2-time at least 2"},
		{"argon2 threads", nil, []string{"--argon2-threads", "2"}, "--argon2-threads 1"},
		{"argon2 memory above the budget", nil, []string{"--argon2-memory", "1000000"}, "--argon2-*: new password hasher: memory budget"},
		{"database", nil, []string{"--database", "mysql://db"}, "--database: "},
		{"hash ceiling", nil, []string{"--password-hash-ceiling", "m=1"}, "--password-hash-ceiling: "},
		{"pepper file missing", nil, []string{"--password-pepper-file", "no-such-pepper"}, "--password-pepper-file: read password pepper file"},
		{"pepper too short", nil, []string{"--password-pepper-file", writeFile(t, "pepper", shortPepper)}, "the key must be at least 32 bytes"},
		{"blocklist missing", nil, []string{"--password-blocklist", "no-such-list"}, "--password-blocklist: "},

		// serve's own.
		{"issuer not a URL", nil, []string{"--issuer", "ftp://id.example.test"}, "--issuer: issuer must be an absolute http(s) URL"},
		{"public url not a URL", nil, []string{"--public-url", "id.example.test/"}, "--public-url: "},
		{"public url with a query", nil, []string{"--public-url", "https://id.example.test?x=1"}, "--public-url: "},
		{"reset token lifetime too short", nil, []string{"--reset-token-lifetime", "30s"}, "--reset-token-lifetime must be between 1m and 24h"},
		{"reset token lifetime too long", map[string]string{"KEYWARD_RESET_TOKEN_LIFETIME": "48h"}, nil, "--reset-token-lifetime must be between 1m and 24h"},
		{"http issuer off loopback", nil, []string{"--issuer", "http://id.example.test"}, "--issuer http://id.example.test must be https (or pass --insecure-http for a test setup)"},
		{"certificate without key", nil, []string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{"key without certificate", nil, []string{"--tls-key", "k.pem"}, "--tls-cert and --tls-key go together"},
		{"trusted proxy", nil, []string{"--trusted-proxies", "10.0.0.0/8,nonsense"}, `--trusted-proxies: "nonsense" is not a CIDR such as 10.0.0.0/8`},
		{"https without certificate or proxy", nil, []string{"--issuer", "https://id.example.test"}, "--issuer https://id.example.test is https but there is no --tls-cert"},
		{"http issuer beyond loopback", nil, []string{"--addr", ":8080"}, "--addr :8080 reaches beyond loopback"},
		{"access token too short", nil, []string{"--access-token-ttl", "29s"}, "--access-token-ttl must be between 30s and 1h, got 29s"},
		{"access token too long", nil, []string{"--access-token-ttl", "61m"}, "--access-token-ttl must be between 30s and 1h, got 1h1m0s"},
		{"refresh token ttl", nil, []string{"--refresh-token-ttl", "0s"}, "--refresh-token-ttl must be positive, got 0s"},
		{"idle above absolute", nil, []string{"--refresh-token-ttl", "1h", "--refresh-token-idle-ttl", "2h"}, "--refresh-token-idle-ttl must be positive and at most --refresh-token-ttl, got 2h0m0s"},
		{"password-grant refresh above absolute", nil, []string{"--password-grant-refresh-token-ttl", "1000h"}, "--password-grant-refresh-token-ttl must be at most --refresh-token-ttl (720h0m0s), got 1000h0m0s"},
		{"password-grant refresh zero", nil, []string{"--password-grant-refresh-token-ttl", "0s"}, "0s is not positive"},
		{"reuse window too long", nil, []string{"--refresh-reuse-window", "2m"}, "--refresh-reuse-window must be between 0s (off) and 1m, got 2m0s"},
		{"reuse window negative", nil, []string{"--refresh-reuse-window", "-1s"}, "--refresh-reuse-window must be between 0s (off) and 1m, got -1s"},
		{"audit retention", nil, []string{"--audit-retention", "59m"}, "--audit-retention must be at least 1h, got 59m0s"},
		{"forbidden scope", nil, []string{"--password-grant-forbidden-scopes", "api:read,café"}, `--password-grant-forbidden-scopes: "café" is not a scope (RFC 6749 §3.3 scope-token)`},
		{"rotation period", nil, []string{"--key-rotation-period", "10s"}, "--key-rotation-period must be at least 1m0s, got 10s"},
		{"jwks max-age", nil, []string{"--jwks-max-age", "0s"}, "--jwks-max-age must be positive, got 0s"},
		{"key size", nil, []string{"--key-size", "1024"}, "--key-size must be 2048, 3072 or 4096, got 1024"},
		{"publish margin", nil, []string{"--key-publish-margin", "1s"}, "--key-publish-margin: key policy: publish margin"},
		{"free failures", nil, []string{"--login-free-failures", "100"}, `invalid argument "100" for "--login-free-failures" flag: 100 is not between 1 and 99`},
		{"backoff base", nil, []string{"--login-backoff-base", "0s"}, `invalid argument "0s" for "--login-backoff-base" flag: 0s is not positive`},
		{"introspection rate", nil, []string{"--introspect-revoke-rate", "NaN"}, `"NaN" is not a number`},
		{"introspection burst", nil, []string{"--introspect-revoke-burst", "0"}, "0 is not between 1 and 1048576"},

		// The key-encryption key.
		{"key on the command line", nil, []string{"--key-encryption-key", kek64}, "--key-encryption-key is refused: on the command line the key is readable by every local user (ps, /proc/PID/cmdline); set KEYWARD_KEY_ENCRYPTION_KEY in the environment, key-encryption-key in the --config file, or use --key-encryption-key-file"},
		{"key in the environment and a file", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY": kek64}, []string{"--key-encryption-key-file", "kek"}, "set only one of KEYWARD_KEY_ENCRYPTION_KEY and --key-encryption-key-file"},
		{"key not base64", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY": "not base64!"}, nil, "KEYWARD_KEY_ENCRYPTION_KEY: key-encryption key is not valid base64"},
		{"PostgreSQL without a key", nil, []string{"--database", "postgres://nobody@127.0.0.1:1/none"}, "a PostgreSQL deployment needs --key-encryption-key-file or KEYWARD_KEY_ENCRYPTION_KEY"},

		// From the environment.
		{"variable not a duration", map[string]string{"KEYWARD_ACCESS_TOKEN_TTL": "soon"}, nil, `KEYWARD_ACCESS_TOKEN_TTL="soon" is not a valid --access-token-ttl`},
		{"variable out of range", map[string]string{"KEYWARD_ACCESS_TOKEN_TTL": "2h"}, nil, "--access-token-ttl must be between 30s and 1h, got 2h0m0s"},
		{"throttle variable out of range", map[string]string{"KEYWARD_LOGIN_FREE_FAILURES": "0"}, nil, `KEYWARD_LOGIN_FREE_FAILURES="0" is not a valid --login-free-failures: 0 is not between 1 and 99`},
		{"shared variable", map[string]string{"KEYWARD_LOG_LEVEL": "loud"}, nil, `--log-level must be debug, info, warn or error, not "loud"`},
		{"list variable", map[string]string{"KEYWARD_TRUSTED_PROXIES": "nonsense"}, nil, `--trusted-proxies: "nonsense" is not a CIDR`},
		{"two bad variables", map[string]string{"KEYWARD_DATABASE_WAIT": "soon", "KEYWARD_SHUTDOWN_TIMEOUT": "later"}, nil, `KEYWARD_SHUTDOWN_TIMEOUT="later" is not a valid --shutdown-timeout`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			c, err := serveConfigOf(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if c != nil {
				t.Error("serve ran after a refused configuration")
			}
			if strings.Contains(err.Error(), kek64) || strings.Contains(err.Error(), shortPepper) {
				t.Error("the error repeats a secret")
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("a refused configuration created %v", entries)
			}
		})
	}
}

// TestServeChecksBeforeOpening: the real serve refuses a configuration
// before it creates the database or a key-encryption key, also for the
// checks that need the database's kind or read a file.
func TestServeChecksBeforeOpening(t *testing.T) {
	kek64 := base64.StdEncoding.EncodeToString(keys.NewKEK())
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"key in the environment and a file", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY": kek64}, []string{"--key-encryption-key-file", "kek"}, "set only one of"},
		{"key not base64", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY": "not base64!"}, nil, "not valid base64"},
		{"pepper file missing", nil, []string{"--password-pepper-file", "no-such-pepper"}, "--password-pepper-file"},
		{"blocklist missing", nil, []string{"--password-blocklist", "no-such-list"}, "--password-blocklist"},
		{"hasher memory above the budget", nil, []string{"--argon2-memory", "1000000"}, "--argon2-*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second) // a serve that starts returns nil when ctx ends
			defer cancel()
			root := newRootCmd()
			root.SetOut(io.Discard)
			root.SetErr(io.Discard)
			root.SetArgs(append([]string{"serve", "--database", "sqlite:keyward.db", "--addr", "127.0.0.1:0"}, tt.args...))
			err := root.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("the refused start created %v", entries)
			}
		})
	}
}
