package mail

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOutbox: each mail becomes an .eml file (0600, in a 0700 directory)
// that ListOutbox lists oldest first and ReadOutbox decodes, the link
// intact in both parts; Close drains the queue first.
func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyward-outbox")
	log, logs := newLog()
	q, err := NewOutbox(dir, fast(Options{Log: log}))
	if err != nil {
		t.Fatal(err)
	}
	if q.String() != "outbox "+dir {
		t.Errorf("String() = %q", q.String())
	}
	msgs := []Message{
		resetMessage("zh-CN"),
		{Kind: KindVerifyEmail, To: "bob@example.com", Username: "bob", Link: "https://id.example.com/account/verify-email?token=kwev_x", Expires: 24 * time.Hour},
		{Kind: KindPasswordChanged, To: "carol@example.com", Username: "carol"},
	}
	for _, m := range msgs {
		if err := q.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct file times, for the order
	}
	if err := q.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("outbox dir: %v %v", fi.Mode(), err)
	}
	list, err := ListOutbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %d mails: %+v", len(list), list)
	}
	tos := []string{}
	for i, e := range list {
		tos = append(tos, e.To)
		if e.N != i+1 || e.Time.IsZero() || !strings.HasSuffix(e.File, ".eml") {
			t.Errorf("entry %+v", e)
		}
		fi, err := os.Stat(e.File)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v", e.File, fi.Mode(), err)
		}
	}
	if strings.Join(tos, " ") != "<alice@example.com> <bob@example.com> <carol@example.com>" {
		t.Errorf("order %v", tos)
	}
	if list[0].Subject != "重置您的 Keyward 密码" {
		t.Errorf("subject %q", list[0].Subject)
	}
	m, err := ReadOutbox(list[0].File)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Text, testLink) || !strings.Contains(m.HTML, `href="`+testLink+`"`) || m.From != `"Keyward" <noreply@example.com>` {
		t.Errorf("read back: from %q\n%s\n%s", m.From, m.Text, m.HTML)
	}
	raw, _ := os.ReadFile(list[0].File)
	if !strings.Contains(string(raw), "multipart/alternative") {
		t.Errorf("not multipart:\n%s", raw)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("left over files: %v", entries)
	}
	checkNoSecrets(t, logs.String())
}

func TestOutboxErrors(t *testing.T) {
	if _, err := ListOutbox(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing outbox: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := NewOutbox(file, Options{}); err == nil {
		t.Error("a file as the outbox")
	}
	shared := filepath.Join(t.TempDir(), "shared")
	os.Mkdir(shared, 0o755)
	log, logs := newLog()
	q, err := NewOutbox(shared, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	q.Close(context.Background())
	if !strings.Contains(logs.String(), "open to other users") {
		t.Errorf("no warning for a shared outbox: %s", logs)
	}
}
