package mailtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
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

// Kind is the mail.Kind the message says it is (the X-Keyward-Kind header
// Sender writes).
func (m Received) Kind() mail.Kind { return mail.Kind(m.Header("X-Keyward-Kind")) }

var linkRE = regexp.MustCompile(`https?://[^\s"<>]+\?token=kw(pr|ev)_[A-Za-z0-9_-]+`)

// Link is the first account link (reset or verify) in the message, "" if none.
func (m Received) Link() string { return linkRE.FindString(m.Data) }

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

// Sender is a mail.Sender that delivers each message to an SMTP server at
// once, over net/smtp, from From. It counts what it sent.
type Sender struct {
	Addr string // the server's host:port
	From string // default keyward@localhost

	mu   sync.Mutex
	sent int
}

// Sent is how many messages s delivered.
func (s *Sender) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

// Send delivers m. An address with a line break is refused (RR-14).
func (s *Sender) Send(_ context.Context, m mail.Message) error {
	from := s.From
	if from == "" {
		from = "keyward@localhost"
	}
	if strings.ContainsAny(m.To+m.Username+m.NewEmail, "\r\n") {
		return errors.New("mailtest: line break in a header field")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: Keyward %s\r\nX-Keyward-Kind: %s\r\nContent-Language: %s\r\n",
		from, m.To, m.Kind, m.Kind, m.Lang)
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "Hello %s,\r\n\r\n", m.Username)
	if m.Link != "" {
		fmt.Fprintf(&b, "Open this link within %s:\r\n%s\r\n", m.Expires, m.Link)
	}
	if m.NewEmail != "" {
		fmt.Fprintf(&b, "Your address is now %s.\r\n", m.NewEmail)
	}
	if err := smtp.SendMail(s.Addr, nil, from, []string{m.To}, []byte(b.String())); err != nil {
		return err
	}
	s.mu.Lock()
	s.sent++
	s.mu.Unlock()
	return nil
}

// FailingSender is a mail.Sender whose every Send fails, as a full or
// closed queue does.
type FailingSender struct{}

// ErrQueueFull is FailingSender's error.
var ErrQueueFull = errors.New("mail queue full")

// Send fails.
func (FailingSender) Send(context.Context, mail.Message) error { return ErrQueueFull }
