package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/keyward/keyward/internal/browsertest"
)

// The end-to-end browser tests drive Debian's Chromium through
// internal/browsertest (skipped without it unless KEYWARD_BROWSER_REQUIRED
// is set). Screenshots go to $KEYWARD_ARTIFACTS/e2e/<test name>, else to a
// temporary directory; the test logs the path.

// chrome is one headless Chromium with a fresh profile.
type chrome struct{ *browsertest.Browser }

func newChrome(t *testing.T) *chrome {
	t.Helper()
	return &chrome{browsertest.New(t, filepath.Join("e2e", strings.ReplaceAll(t.Name(), "/", "-")))}
}

// do runs a with a timeout, failing the test on error.
func do[T any](b *chrome, what string, a chromedp.Action[T]) T {
	b.T.Helper()
	return browsertest.Run(b.Browser, what, a)
}

func (b *chrome) open(url string) *network.Response  { b.T.Helper(); return b.Open(url) }
func (b *chrome) click(css string) *network.Response { b.T.Helper(); return b.Click(css) }
func (b *chrome) submit() *network.Response          { b.T.Helper(); return b.Submit() }
func (b *chrome) typeInto(id, text string)           { b.T.Helper(); b.TypeInto(id, text) }
func (b *chrome) text(css string) string             { b.T.Helper(); return b.Text(css) }
func (b *chrome) shot(name string)                   { b.T.Helper(); b.Shot(name) }

func (b *chrome) location() string {
	b.T.Helper()
	return do(b, "read the location", chromedp.Location())
}
