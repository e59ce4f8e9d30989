package mailtest

import (
	"context"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/keyward/keyward/idp/mail"
)

// Received is one message the server accepted.
type Received struct {
	From string
	To   []string
	Data string // headers and body, as sent
}

// Header returns the value of the first header name in m, "" if none.
func (m Received) Header(name string) string {
	head, _, _ := strings.Cut(m.Data, "\r\n\r\n")
	for line := range strings.SplitSeq(head, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Kind is the mail.Kind the message says it is (its X-Keyward-Kind header).
func (m Received) Kind() mail.Kind { return mail.Kind(m.Header("X-Keyward-Kind")) }

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+\?token=kw(pr|ev)_[A-Za-z0-9_-]+`)

// Link is the first account link (reset or verify) in the message's text,
// "" if none.
func (m Received) Link() string { return linkRE.FindString(m.Text()) }

// Text is the message's body decoded: every text part of a multipart
// message, quoted-printable and base64 undone, one after the other; the
// raw data when it cannot be parsed.
func (m Received) Text() string {
	msg, err := netmail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		return m.Data
	}
	var b strings.Builder
	if err := decodePart(&b, textproto.MIMEHeader(msg.Header), msg.Body); err != nil {
		return m.Data
	}
	return b.String()
}

// decodePart writes the decoded text of one MIME part, recursing into
// multipart ones.
func decodePart(w io.Writer, h textproto.MIMEHeader, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if err := decodePart(w, p.Header, p); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	_, err = io.Copy(w, body)
	io.WriteString(w, "\n")
	return err
}

// Token is the token of the message's link, "" if none.
func (m Received) Token() string {
	_, tok, _ := strings.Cut(m.Link(), "?token=")
	return tok
}

// Server is an SMTP server on a loopback port that keeps every message.
type Server struct {
	Addr string // host:port

	mu   sync.Mutex
	msgs []Received
	more chan struct{} // closed and replaced on every message
}

// NewServer starts a server, stopped when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{more: make(chan struct{})}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &session{s: s}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 5
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *Server) add(m Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.more)
	s.more = make(chan struct{})
}

// Messages returns every message received so far.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Received(nil), s.msgs...)
}

// To returns the messages received so far for addr, of kind when kind is
// not "".
func (s *Server) To(addr string, kind mail.Kind) []Received {
	var out []Received
	for _, m := range s.Messages() {
		if len(m.To) == 1 && strings.EqualFold(m.To[0], addr) && (kind == "" || m.Kind() == kind) {
			out = append(out, m)
		}
	}
	return out
}

// Wait returns the n-th message (counting from 1) for addr of kind, waiting
// up to 10 seconds for it.
func (s *Server) Wait(t testing.TB, addr string, kind mail.Kind, n int) Received {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		more := s.more
		s.mu.Unlock()
		if ms := s.To(addr, kind); len(ms) >= n {
			return ms[n-1]
		}
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("no message %d of kind %q to %s; got %d messages in all", n, kind, addr, len(s.Messages()))
		}
	}
}

type session struct {
	s    *Server
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }
func (x *session) Mail(from string, _ *gosmtp.MailOptions) error {
	x.from = from
	return nil
}
func (x *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.s.add(Received{From: x.from, To: x.to, Data: string(b)})
	return nil
}

// NewSender is Keyward's own SMTP sender (idp/mail: the queue, go-mail,
// the embedded templates) delivering to the server at addr, with quick
// retries; it is closed, its queue drained, when the test ends.
func NewSender(t testing.TB, addr string) *mail.Mailer {
	t.Helper()
	srv, err := mail.ParseSMTPURL("smtp://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.NewSMTP(srv, mail.Options{From: "Keyward <keyward@example.com>", Attempts: 3,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, SendTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	return m
}

// FailingSender is a mail.Sender whose every Send fails, as a full queue
// does (mail.ErrQueueFull).
type FailingSender struct{}

// Send fails.
func (FailingSender) Send(context.Context, mail.Message) error { return mail.ErrQueueFull }
