package oauth

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/keyward/keyward/idp/web"
)

// JWKS serves the public key set (RFC 7517) from memory: next, active and
// retired keys, a strong ETag, public caching for JWKSMaxAge, and 304 when
// the client already has this version.
func (s *Provider) JWKS(w http.ResponseWriter, r *http.Request) error {
	doc, etag := s.cfg.Keys.JWKS()
	h := w.Header()
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(s.cfg.JWKSMaxAge.Seconds())))
	h.Set("ETag", etag)
	h.Set("Access-Control-Allow-Origin", "*")
	if etagMatches(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", web.ContentTypeJWKSet)
	h.Set("Content-Length", strconv.Itoa(len(doc)))
	if r.Method != http.MethodHead {
		w.Write(doc)
	}
	return nil
}

// etagMatches applies If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatches(headers []string, etag string) bool {
	if etag == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, h := range headers {
		for _, t := range strings.Split(h, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == want {
				return true
			}
		}
	}
	return false
}
