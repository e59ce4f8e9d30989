package testsupport

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FormRequest is a request to target carrying form as
// application/x-www-form-urlencoded (no body when form is nil), cancelled
// when the test ends.
func FormRequest(t testing.TB, method, target string, form url.Values) *http.Request {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

// Do sends req with c (http.DefaultClient when nil) and returns the answer's
// status, whole body and header. A failure to send or read fails the test.
func Do(t testing.TB, c *http.Client, req *http.Request) (int, []byte, http.Header) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b, res.Header
}

// Get is Do for a plain GET of target with http.DefaultClient.
func Get(t testing.TB, target string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return Do(t, nil, req)
}
