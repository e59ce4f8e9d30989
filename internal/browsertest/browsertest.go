// Package browsertest drives Debian's Chromium (apt-get install chromium)
// headless through Keyward's pages for the browser tests, as a person
// would: no script of ours runs in the page (the pages' CSP forbids it);
// chromedp types, clicks and reads. It is imported only by _test.go files
// and imports nothing of Keyward.
//
// Without Chromium a test skips, unless KEYWARD_BROWSER_REQUIRED is set (CI
// sets it), which makes a missing browser a failure. Screenshots (PNG) go
// to $KEYWARD_ARTIFACTS/<dir>, else to a temporary directory; the test logs
// the path.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Chromium finds the browser, or skips or fails the test.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KEYWARD_BROWSER_REQUIRED") != "" {
		t.Fatal("chromium not found and KEYWARD_BROWSER_REQUIRED is set: install it with apt-get install -y chromium")
	}
	t.Skip("chromium not found: install it with apt-get install -y chromium to run the browser tests " +
		"(set KEYWARD_BROWSER_REQUIRED=1 to make this a failure)")
	return ""
}

// Browser is one headless Chromium with a fresh profile, and where its
// screenshots go.
type Browser struct {
	T     testing.TB
	Ctx   context.Context // a tab; runs start from it with their own timeout
	Shots string          // the screenshot directory
}

// New starts a browser for t, its screenshots under $KEYWARD_ARTIFACTS/dir.
func New(t testing.TB, dir string) *Browser {
	t.Helper()
	path := Chromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(720, 860),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser, without a timeout (chromedp.Run)
		t.Fatalf("start chromium: %v", err)
	}
	b := &Browser{T: t, Ctx: ctx, Shots: t.TempDir()}
	if root := os.Getenv("KEYWARD_ARTIFACTS"); root != "" {
		b.Shots = filepath.Join(root, dir)
		if err := os.MkdirAll(b.Shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", b.Shots)
	return b
}

// Run runs steps with a timeout, failing the test on error.
func Run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.T.Fatalf("%s: %v", what, err)
	}
	return v
}

// Open navigates to url and returns the document's response.
func (b *Browser) Open(url string) *network.Response {
	b.T.Helper()
	return Run(b, "open "+url, chromedp.NavigateResponse(url))
}

// Submit clicks the form's submit button and returns the response of the
// page it loads.
func (b *Browser) Submit() *network.Response {
	b.T.Helper()
	return b.Click(`button[type="submit"]`)
}

// Click clicks the element css names and returns the response of the page
// it loads.
func (b *Browser) Click(css string) *network.Response {
	b.T.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css)))
	if err != nil {
		b.T.Fatalf("click %s: %v", css, err)
	}
	return resp
}

// TypeInto types text into the element with id.
func (b *Browser) TypeInto(id, text string) {
	b.T.Helper()
	Run(b, "type into "+id, chromedp.SendKeys(chromedp.ID(id), text))
}

// Text is the trimmed text of the element css names.
func (b *Browser) Text(css string) string {
	b.T.Helper()
	return strings.TrimSpace(Run(b, "read "+css, chromedp.Text(chromedp.CSS(css))))
}

// Eval runs a DevTools expression (not a page script: the CSP does not
// apply to it) and returns its string value.
func (b *Browser) Eval(expr string) string {
	b.T.Helper()
	return Run(b, "evaluate "+expr, chromedp.Evaluate[string](expr))
}

// Shot saves a full-page PNG screenshot as name.png.
func (b *Browser) Shot(name string) {
	b.T.Helper()
	png := Run(b, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(b.Shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.T.Fatal(err)
	}
	b.T.Logf("screenshot %s", p)
}

// WantPage checks a document's status and the page headers as the browser
// received them: the CSP csp, no-store, DENY framing, and, when referrer
// is set, Referrer-Policy no-referrer and the HTML content type.
func WantPage(t testing.TB, resp *network.Response, status int, csp string, referrer bool) {
	t.Helper()
	if resp.Status != int64(status) {
		t.Fatalf("%s: status %d, want %d", resp.URL, resp.Status, status)
	}
	h := map[string]string{}
	for k, v := range resp.Headers {
		h[strings.ToLower(k)] = fmt.Sprint(v)
	}
	want := map[string]string{"content-security-policy": csp, "cache-control": "no-store", "x-frame-options": "DENY"}
	if referrer {
		want["referrer-policy"] = "no-referrer"
		want["content-type"] = "text/html; charset=utf-8"
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s: %s %q, want %q", resp.URL, k, h[k], v)
		}
	}
}

var (
	inputRE = regexp.MustCompile(`<input [^>]*>`)
	idRE    = regexp.MustCompile(`id="([^"]+)"`)
)

// LabelledInputs returns the <input> elements of the page body that a
// person fills (all but hidden ones) and fails t for each without a
// <label for> naming its id: the accessibility check every page passes.
func LabelledInputs(t testing.TB, path, body string) []string {
	t.Helper()
	var out []string
	for _, in := range inputRE.FindAllString(body, -1) {
		if strings.Contains(in, `type="hidden"`) {
			continue
		}
		id := idRE.FindStringSubmatch(in)
		if id == nil || !strings.Contains(body, `<label for="`+id[1]+`">`) {
			t.Errorf("%s: input without a label: %s", path, in)
		}
		out = append(out, in)
	}
	return out
}
