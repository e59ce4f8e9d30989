package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// OutboxDirName is the outbox's name beside a SQLite database.
const OutboxDirName = "keyward-outbox"

// outbox is the development transport: each message becomes an .eml file
// (the same RFC 5322 text SMTP would carry) in dir, mode 0600 in a 0700
// directory, named so that names sort by time.
type outbox struct {
	dir string
	now func() time.Time
}

// NewOutbox returns a Mailer that writes each message into dir, which it
// creates (0700) if missing; an existing dir open to other users gets a
// warning, as it will hold reset links.
func NewOutbox(dir string, o Options) (*Mailer, error) {
	if dir == "" {
		return nil, errors.New("mail: no outbox directory")
	}
	if o.From != "" {
		if err := CheckFrom(o.From); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("mail outbox %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 && o.Log != nil {
		o.Log.Warn("the mail outbox is open to other users than its owner, and its mails hold reset links; chmod 700 it unless that is meant",
			"dir", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	return newMailer(outbox{dir: dir, now: now}, o), nil
}

func (b outbox) String() string         { return "outbox " + b.dir }
func (outbox) secret() string           { return "" }
func (outbox) permanent(err error) bool { return false } // a full disk may clear

func (b outbox) deliver(_ context.Context, m Message, msg *gomail.Msg) error {
	var r [4]byte
	rand.Read(r[:])
	name := b.now().UTC().Format("20060102T150405.000000000Z") + "-" + kindLabel(m.Kind) + "-" + hex.EncodeToString(r[:]) + ".eml"
	f, err := os.CreateTemp(b.dir, ".writing-*") // 0600
	if err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if _, err := msg.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write outbox: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(b.dir, name)); err != nil {
		return fmt.Errorf("write outbox: %w", err)
	}
	return nil
}

// OutboxEntry is one message in the outbox, as `keyward mail list` shows it.
type OutboxEntry struct {
	N       int       `json:"n"` // 1 for the oldest
	Time    time.Time `json:"time"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	File    string    `json:"file"`
}

// OutboxMessage is one message read back, its parts decoded.
type OutboxMessage struct {
	OutboxEntry
	From string `json:"from"`
	Text string `json:"text"`
	HTML string `json:"html"`
}

// ListOutbox lists the .eml files in dir, oldest first. A missing dir is an
// error wrapping fs.ErrNotExist.
func ListOutbox(dir string) ([]OutboxEntry, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mail outbox: %w", err)
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".eml") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	out := make([]OutboxEntry, 0, len(names))
	for i, n := range names {
		path := filepath.Join(dir, n)
		msg, err := readMessage(path, false)
		if err != nil {
			return nil, err
		}
		msg.N = i + 1
		out = append(out, msg.OutboxEntry)
	}
	return out, nil
}

// ReadOutbox reads the message in file, with its text and HTML parts.
func ReadOutbox(file string) (OutboxMessage, error) {
	return readMessage(file, true)
}

func readMessage(path string, body bool) (OutboxMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return OutboxMessage{}, fmt.Errorf("mail outbox: %w", err)
	}
	defer f.Close()
	return readMessageFrom(f, path, body)
}

// readMessageFrom parses an RFC 5322 message from r; path names it.
func readMessageFrom(r io.Reader, path string, body bool) (OutboxMessage, error) {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return OutboxMessage{}, fmt.Errorf("mail outbox %s: %w", path, err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		subject = m.Header.Get("Subject")
	}
	out := OutboxMessage{OutboxEntry: OutboxEntry{To: m.Header.Get("To"), Subject: subject, File: path}, From: m.Header.Get("From")}
	if t, err := m.Header.Date(); err == nil {
		out.Time = t
	}
	if !body {
		return out, nil
	}
	if err := readParts(m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body, &out); err != nil {
		return OutboxMessage{}, fmt.Errorf("mail outbox %s: %w", path, err)
	}
	return out, nil
}

// readParts fills Text and HTML from a body of type ctype: a single part,
// or a multipart tree; multipart decodes quoted-printable itself.
func readParts(ctype, cte string, r io.Reader, out *OutboxMessage) error {
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := readParts(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, out); err != nil {
				return err
			}
		}
	}
	if strings.EqualFold(cte, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n") // mail's line ends, as a terminal wants them
	switch mt {
	case "text/plain":
		out.Text += text
	case "text/html":
		out.HTML += text
	}
	return nil
}
