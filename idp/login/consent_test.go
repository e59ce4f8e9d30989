package login

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyward/keyward/idp/ui"
)

// TestConsent: the consent page needs a session, names the client and
// describes the scopes; approving remembers them (a union with what was
// granted before) and marks the request; denying marks it denied and
// remembers nothing.
func TestConsent(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		req := e.newRequest("req-c", "openid", "email", "photos:read")
		b := e.browser()
		wantRedirect(t, b.get(ConsentPath+"?req="+req), "login?req=req-c")
		b.login(req, alicePassword)
		p := b.get(ConsentPath + "?req=" + req)
		wantStatus(t, p, http.StatusOK, "Photo Album", ui.T("en", "scope.email"), "photos:read", `value="approve"`, `value="deny"`)
		if ok, _ := e.h.ConsentGiven(ctx, e.alice.ID, "photos", []string{"openid"}); ok {
			t.Fatal("consent before approval")
		}
		wantRedirect(t, b.post(ConsentPath, url.Values{"req": {req}, "action": {"approve"}}), "oauth2/authorize/resume?req=req-c")
		if ar := e.reqs.get(req); ar.ConsentAt.IsZero() || ar.Denied {
			t.Fatalf("request %+v", ar)
		}
		for _, c := range []struct {
			scope []string
			want  bool
		}{{[]string{"openid", "email"}, true}, {[]string{"openid", "email", "photos:read"}, true}, {[]string{"profile"}, false}} {
			if ok, err := e.h.ConsentGiven(ctx, e.alice.ID, "photos", c.scope); ok != c.want || err != nil {
				t.Errorf("ConsentGiven(%v) = %v %v", c.scope, ok, err)
			}
		}
		req2 := e.newRequest("req-c2", "profile")
		b.get(ConsentPath + "?req=" + req2)
		b.post(ConsentPath, url.Values{"req": {req2}, "action": {"approve"}})
		if ok, _ := e.h.ConsentGiven(ctx, e.alice.ID, "photos", []string{"openid", "email", "photos:read", "profile"}); !ok {
			t.Error("consents are not joined")
		}

		// Deny.
		if err := e.db.RevokeConsent(ctx, e.alice.ID, "photos"); err != nil {
			t.Fatal(err)
		}
		req3 := e.newRequest("req-c3", "openid")
		b.get(ConsentPath + "?req=" + req3)
		wantRedirect(t, b.post(ConsentPath, url.Values{"req": {req3}, "action": {"deny"}}), "oauth2/authorize/resume?req=req-c3")
		if ar := e.reqs.get(req3); !ar.Denied {
			t.Fatal("denial not marked")
		}
		if ok, _ := e.h.ConsentGiven(ctx, e.alice.ID, "photos", []string{"openid"}); ok {
			t.Fatal("a denial remembered a consent")
		}
		// Chinese.
		req4 := e.newRequest("req-c4", "email")
		hr, _ := http.NewRequest(http.MethodGet, e.srv.URL+ConsentPath+"?req="+req4, nil)
		hr.Header.Set("Accept-Language", "zh-CN")
		u, _ := url.Parse(e.srv.URL)
		for _, c := range b.c.Jar.Cookies(u) {
			hr.AddCookie(c)
		}
		resp, err := b.c.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("zh consent: %d", resp.StatusCode)
		}
	})
}
