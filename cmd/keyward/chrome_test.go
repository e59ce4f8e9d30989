package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The end-to-end browser tests drive Debian's Chromium (apt-get install
// chromium) headless, as a person would: chromedp types, clicks and reads;
// no script of ours runs in Keyward's pages. Without Chromium they skip,
// unless KEYWARD_BROWSER_REQUIRED is set (CI sets it). Screenshots go to
// $KEYWARD_ARTIFACTS/e2e/<test name>, else to a temporary directory; the test logs the
// path.

// chrome is one headless Chromium with a fresh profile.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	var path string
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("KEYWARD_BROWSER_REQUIRED") != "" {
			t.Fatal("chromium not found and KEYWARD_BROWSER_REQUIRED is set: install it with apt-get install -y chromium")
		}
		t.Skip("chromium not found: install it with apt-get install -y chromium to run the browser end-to-end tests " +
			"(set KEYWARD_BROWSER_REQUIRED=1 to make this a failure)")
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
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
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &chrome{t: t, ctx: ctx, shots: t.TempDir()}
	if dir := os.Getenv("KEYWARD_ARTIFACTS"); dir != "" {
		b.shots = filepath.Join(dir, "e2e", strings.ReplaceAll(t.Name(), "/", "-"))
		if err := os.MkdirAll(b.shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", b.shots)
	return b
}

// do runs a with a timeout, failing the test on error.
func do[T any](b *chrome, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// open navigates to url and returns the response of the document the
// navigation ends on (after redirects).
func (b *chrome) open(url string) *network.Response {
	b.t.Helper()
	return do(b, "open "+url, chromedp.NavigateResponse(url))
}

// click clicks the element and returns the response of the page it loads.
func (b *chrome) click(css string) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("click %s: %v", css, err)
	}
	return resp
}

func (b *chrome) submit() *network.Response { b.t.Helper(); return b.click(`button[type="submit"]`) }

func (b *chrome) typeInto(id, text string) {
	b.t.Helper()
	do(b, "type into "+id, chromedp.SendKeys(chromedp.ID(id), text))
}

func (b *chrome) text(css string) string {
	b.t.Helper()
	return strings.TrimSpace(do(b, "read "+css, chromedp.Text(chromedp.CSS(css))))
}

func (b *chrome) location() string {
	b.t.Helper()
	return do(b, "read the location", chromedp.Location())
}

// shot saves a full-page PNG screenshot as name.png.
func (b *chrome) shot(name string) {
	b.t.Helper()
	png := do(b, "screenshot "+name, chromedp.FullScreenshot(100))
	p := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}
