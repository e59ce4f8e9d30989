package mail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message a test SMTP server accepted.
type received struct {
	From string
	To   []string
	Data []byte
	TLS  bool   // the session ran over TLS (STARTTLS or implicit)
	User string // the AUTH PLAIN user, if any
	Pass string
}

// testSMTP is a real SMTP server (go-smtp) on a listener the test picks.
type testSMTP struct {
	Addr string
	srv  *smtp.Server

	mu       sync.Mutex
	got      []received
	attempts int // MAIL commands seen

	failFirst int                   // answer the first failFirst MAIL commands with a 451
	rcptErr   *smtp.SMTPError       // answer every RCPT with this
	authErr   func(pw string) error // refuse AUTH with this error
	hold      chan struct{}         // when set, DATA waits until it is closed
}

type smtpOptions struct {
	tls       *tls.Config // offer STARTTLS with it
	implicit  bool        // serve TLS from the first byte (smtps)
	auth      bool        // offer AUTH PLAIN (only over TLS)
	failFirst int
	rcptErr   *smtp.SMTPError
	authErr   func(pw string) error
	hold      chan struct{}
}

// startSMTP starts a server listening on host (an IP) at a free port.
func startSMTP(t *testing.T, host string, o smtpOptions) *testSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &testSMTP{Addr: ln.Addr().String(), failFirst: o.failFirst, rcptErr: o.rcptErr, authErr: o.authErr, hold: o.hold}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &testSession{ts: ts, conn: c, auth: o.auth, isTLS: isTLS}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.ErrorLog = discardLogger{}
	if o.tls != nil {
		s.TLSConfig = o.tls
	}
	if o.implicit {
		ln = tls.NewListener(ln, o.tls)
	}
	ts.srv = s
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ts
}

func (ts *testSMTP) messages() []received {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]received(nil), ts.got...)
}

func (ts *testSMTP) mailCommands() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.attempts
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

type testSession struct {
	ts    *testSMTP
	conn  *smtp.Conn
	auth  bool
	isTLS bool
	cur   received
}

func (s *testSession) tlsNow() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok || s.isTLS
}

func (s *testSession) AuthMechanisms() []string {
	if !s.auth {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	if !s.auth || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if s.ts.authErr != nil {
			return s.ts.authErr(pass)
		}
		s.cur.User, s.cur.Pass = user, pass
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	s.ts.mu.Lock()
	s.ts.attempts++
	n := s.ts.attempts
	s.ts.mu.Unlock()
	if n <= s.ts.failFirst {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.cur.From = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.ts.rcptErr != nil {
		return s.ts.rcptErr
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.ts.hold != nil {
		<-s.ts.hold
	}
	s.cur.Data, s.cur.TLS = b, s.tlsNow()
	s.ts.mu.Lock()
	s.ts.got = append(s.ts.got, s.cur)
	s.ts.mu.Unlock()
	return nil
}

func (s *testSession) Reset() {
	user, pass := s.cur.User, s.cur.Pass
	s.cur = received{User: user, Pass: pass}
}

func (s *testSession) Logout() error { return nil }

// selfSigned is a TLS server config for hosts (IPs or names), and a client
// config that trusts it.
func selfSigned(t *testing.T, hosts ...string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyward test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	return server, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// nonLoopbackIP is an address of this machine beyond loopback, or "".
func nonLoopbackIP() string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	return ""
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// parseReceived parses a received message into headers and decoded parts.
func parseReceived(t *testing.T, data []byte) OutboxMessage {
	t.Helper()
	m, err := readMessageFrom(bytes.NewReader(data), "smtp", true)
	if err != nil {
		t.Fatalf("parse received mail: %v\n%s", err, data)
	}
	return m
}
