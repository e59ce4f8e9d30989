package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxDocumentSize caps a discovery or JWKS response (KM-10).
const maxDocumentSize = 1 << 20

// remoteFetcher fetches the issuer's JWKS over HTTP with conditional requests
// (RFC 9110 §13.1.2 If-None-Match, 304 Not Modified).
type remoteFetcher struct {
	client  *http.Client
	url     string
	allowed []string

	mu   sync.Mutex
	etag string
}

func (f *remoteFetcher) fetch(ctx context.Context, noCache bool) (fetched, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if noCache {
		req.Header.Set("Cache-Control", "no-cache")
	}
	f.mu.Lock()
	etag := f.etag
	f.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch jwks: %w", err)
	}
	defer closeBody(resp)
	maxAge := cacheAge(resp.Header.Get("Cache-Control"))
	switch {
	case resp.StatusCode == http.StatusNotModified && etag != "":
		return fetched{notModified: true, maxAge: maxAge}, nil
	case resp.StatusCode != http.StatusOK:
		return fetched{}, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	body, err := readLimited(resp.Body)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch jwks: %w", err)
	}
	keys, err := parseJWKS(body, f.allowed)
	if err != nil {
		return fetched{}, fmt.Errorf("fetch jwks: %w", err)
	}
	f.mu.Lock()
	f.etag = resp.Header.Get("ETag")
	f.mu.Unlock()
	return fetched{keys: keys, maxAge: maxAge}, nil
}

// cacheAge reads the lifetime from a Cache-Control response header (RFC 9111 §5.2.2):
// max-age=N, or 0 for no-store and no-cache. It returns -1 when the header says neither.
func cacheAge(h string) time.Duration {
	age := time.Duration(-1)
	for _, d := range strings.Split(h, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64)
			if err != nil || n < 0 {
				continue
			}
			age = time.Duration(min(n, int64(365*24*time.Hour/time.Second))) * time.Second
		}
	}
	return age
}

// discover finds the jwks_uri in the issuer's metadata: OIDC Discovery 1.0 §4 first,
// then RFC 8414 §3. The metadata issuer must equal the configured one exactly
// (RFC 8414 §3.3, KM-10), and an https issuer must publish an https jwks_uri.
func discover(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("discover jwks: issuer %q is not an http(s) url", issuer)
	}
	base := strings.TrimSuffix(issuer, "/")
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.EscapedPath(), "/")
	var lastErr error
	for _, docURL := range []string{base + "/.well-known/openid-configuration", rfc8414} {
		var meta struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		status, err := getJSON(ctx, client, docURL, &meta)
		if err != nil {
			return "", fmt.Errorf("discover jwks: %w", err)
		}
		if status != http.StatusOK {
			lastErr = fmt.Errorf("discover jwks: %s: status %d", docURL, status)
			continue
		}
		if meta.Issuer != issuer {
			return "", fmt.Errorf("discover jwks: metadata issuer %q is not %q", meta.Issuer, issuer)
		}
		j, err := url.Parse(meta.JWKSURI)
		if err != nil || j.Host == "" || (j.Scheme != "https" && (j.Scheme != "http" || u.Scheme == "https")) {
			return "", fmt.Errorf("discover jwks: unusable jwks_uri %q", meta.JWKSURI)
		}
		return meta.JWKSURI, nil
	}
	return "", lastErr
}

// getJSON GETs url and decodes a 200 response into v; other statuses are returned
// without decoding.
func getJSON(ctx context.Context, client *http.Client, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	body, err := readLimited(resp.Body)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", url, err)
	}
	return resp.StatusCode, nil
}

// readLimited reads at most maxDocumentSize bytes and fails beyond that.
func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDocumentSize {
		return nil, errors.New("response larger than 1 MiB")
	}
	return b, nil
}

// closeBody drains a little of the body, so the connection can be reused, and closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	_ = resp.Body.Close()
}
