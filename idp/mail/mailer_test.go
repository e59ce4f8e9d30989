package mail

import (
	"context"
	"errors"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const smtpPassword = "hunter2-smtp-Secret"

// fast are Options for tests: quick retries, a short timeout.
func fast(o Options) Options {
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = 5 * time.Second
	}
	if o.From == "" {
		o.From = "Keyward <noreply@example.com>"
	}
	return o
}

// serverFor is the SMTPServer at a test server's address.
func serverFor(t *testing.T, addr string) SMTPServer {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return SMTPServer{Host: host, Port: p}
}

func newSMTPMailer(t *testing.T, s SMTPServer, o Options) (*Mailer, *prometheus.Registry) {
	t.Helper()
	q, err := NewSMTP(s, fast(o))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := q.Register(reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		q.Close(ctx)
	})
	return q, reg
}

func resetMessage(lang string) Message {
	return Message{Kind: KindPasswordReset, To: "alice@example.com", Lang: lang, Username: "alice", Link: testLink, Expires: 30 * time.Minute}
}

// TestSMTPDeliversMultipartInBothLanguages sends over STARTTLS (a
// self-signed certificate the client trusts) with AUTH PLAIN to a real SMTP
// server: each mail arrives once, multipart/alternative, the link in both
// parts, the subject in its language.
func TestSMTPDeliversMultipartInBothLanguages(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t, "127.0.0.1")
	ts := startSMTP(t, "127.0.0.1", smtpOptions{tls: serverTLS, auth: true})
	s := serverFor(t, ts.Addr)
	s.Username, s.Password, s.TLSConfig = "mailer", smtpPassword, clientTLS
	log, logs := newLog()
	q, reg := newSMTPMailer(t, s, Options{Log: log})

	for _, lang := range []string{"en", "zh-CN"} {
		if err := q.Send(t.Context(), resetMessage(lang)); err != nil {
			t.Fatal(err)
		}
	}
	testsupport.Eventually(t, "two mails", 10*time.Second, func() bool { return len(ts.messages()) == 2 })

	subjects := map[string]bool{}
	for _, got := range ts.messages() {
		if !got.TLS || got.User != "mailer" || got.Pass != smtpPassword {
			t.Errorf("session TLS=%v user=%q: want STARTTLS and AUTH", got.TLS, got.User)
		}
		if got.From != "noreply@example.com" || len(got.To) != 1 || got.To[0] != "alice@example.com" {
			t.Errorf("envelope %q -> %q", got.From, got.To)
		}
		hdr, err := mail.ReadMessage(strings.NewReader(string(got.Data)))
		if err != nil {
			t.Fatal(err)
		}
		if ct := hdr.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
			t.Errorf("Content-Type %q", ct)
		}
		if hdr.Header.Get("Message-Id") == "" || hdr.Header.Get("Date") == "" || hdr.Header.Get("Auto-Submitted") != "auto-generated" {
			t.Errorf("headers %v", hdr.Header)
		}
		m := parseReceived(t, got.Data)
		subjects[m.Subject] = true
		if !strings.Contains(m.Text, testLink) || !strings.Contains(m.HTML, `href="`+testLink+`"`) {
			t.Errorf("the link is not in both parts:\n%s\n%s", m.Text, m.HTML)
		}
	}
	if !subjects["Reset your Keyward password"] || !subjects["重置您的 Keyward 密码"] {
		t.Errorf("subjects %v", subjects)
	}
	testsupport.Eventually(t, "sent metric", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.sent.WithLabelValues("password_reset")) == 2 })
	if n := testutil.ToFloat64(q.metrics.queued.WithLabelValues("password_reset")); n != 2 {
		t.Errorf("queued %v", n)
	}
	if n, err := testutil.GatherAndCount(reg, "keyward_mail_send_duration_seconds"); err != nil || n != 1 {
		t.Errorf("duration histogram series %d, %v", n, err)
	}
	checkNoSecrets(t, logs.String())
}

// TestSMTPStartTLSRequired: a server beyond loopback that offers no
// STARTTLS gets nothing; with STARTTLS it gets the mail.
func TestSMTPStartTLSRequired(t *testing.T) {
	ip := nonLoopbackIP()
	if ip == "" {
		t.Skip("no address beyond loopback on this machine; TestTLSPolicy covers the decision")
	}
	t.Run("no STARTTLS offered: refused", func(t *testing.T) {
		ts := startSMTP(t, ip, smtpOptions{})
		log, logs := newLog()
		q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Log: log, Attempts: 2})
		if err := q.Send(t.Context(), resetMessage("en")); err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, "the failure", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")) == 1 })
		if len(ts.messages()) != 0 || ts.mailCommands() != 0 {
			t.Fatalf("the server got a mail over plain text")
		}
		if !strings.Contains(logs.String(), "STARTTLS") {
			t.Errorf("the log does not say why: %s", logs)
		}
		checkNoSecrets(t, logs.String())
	})
	t.Run("STARTTLS offered: delivered", func(t *testing.T) {
		serverTLS, clientTLS := selfSigned(t, ip)
		ts := startSMTP(t, ip, smtpOptions{tls: serverTLS})
		s := serverFor(t, ts.Addr)
		s.TLSConfig = clientTLS
		q, _ := newSMTPMailer(t, s, Options{})
		if err := q.Send(t.Context(), resetMessage("en")); err != nil {
			t.Fatal(err)
		}
		testsupport.Eventually(t, "the mail", 10*time.Second, func() bool { return len(ts.messages()) == 1 })
		if !ts.messages()[0].TLS {
			t.Error("delivered without TLS")
		}
	})
	t.Run("untrusted certificate: refused", func(t *testing.T) {
		serverTLS, _ := selfSigned(t, ip)
		ts := startSMTP(t, ip, smtpOptions{tls: serverTLS})
		q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Attempts: 1})
		q.Send(t.Context(), resetMessage("en"))
		testsupport.Eventually(t, "the failure", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")) == 1 })
		if len(ts.messages()) != 0 {
			t.Fatal("delivered to a server whose certificate is not trusted")
		}
	})
}

func TestSMTPImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t, "127.0.0.1")
	ts := startSMTP(t, "127.0.0.1", smtpOptions{tls: serverTLS, implicit: true, auth: true})
	s := serverFor(t, ts.Addr)
	s.ImplicitTLS, s.TLSConfig, s.Username, s.Password = true, clientTLS, "mailer", smtpPassword
	q, _ := newSMTPMailer(t, s, Options{})
	if err := q.Send(t.Context(), resetMessage("en")); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the mail", 10*time.Second, func() bool { return len(ts.messages()) == 1 })
	if got := ts.messages()[0]; !got.TLS || got.Pass != smtpPassword {
		t.Errorf("TLS %v, auth %q", got.TLS, got.User)
	}
}

// TestSMTPRetries: a server answering 451 to the first two attempts gets
// the mail once, on the third.
func TestSMTPRetries(t *testing.T) {
	ts := startSMTP(t, "127.0.0.1", smtpOptions{failFirst: 2})
	log, logs := newLog()
	q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Log: log})
	if err := q.Send(t.Context(), resetMessage("en")); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the mail", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.sent.WithLabelValues("password_reset")) == 1 })
	if n := len(ts.messages()); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
	if n := ts.mailCommands(); n != 3 {
		t.Errorf("attempts %d, want 3", n)
	}
	if n := testutil.ToFloat64(q.metrics.retries.WithLabelValues("password_reset")); n != 2 {
		t.Errorf("retries metric %v", n)
	}
	if strings.Count(logs.String(), "retrying") != 2 || !strings.Contains(logs.String(), "451") {
		t.Errorf("log:\n%s", logs)
	}
	checkNoSecrets(t, logs.String())
}

// TestSMTPPermanentFailure: a 550 for the recipient is not retried.
func TestSMTPPermanentFailure(t *testing.T) {
	ts := startSMTP(t, "127.0.0.1", smtpOptions{rcptErr: &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user alice@example.com"}})
	log, logs := newLog()
	q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Log: log})
	q.Send(t.Context(), resetMessage("en"))
	testsupport.Eventually(t, "the failure", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")) == 1 })
	if n := ts.mailCommands(); n != 1 {
		t.Errorf("attempts %d, want 1", n)
	}
	if n := testutil.ToFloat64(q.metrics.retries.WithLabelValues("password_reset")); n != 0 {
		t.Errorf("retries %v", n)
	}
	if !strings.Contains(logs.String(), "550") {
		t.Errorf("log:\n%s", logs)
	}
	checkNoSecrets(t, logs.String())
}

// TestSMTPServerDown: Send returns at once; after the retries the failure
// is logged at ERROR with the kind and a masked recipient, and counted.
func TestSMTPServerDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	log, logs := newLog()
	s := serverFor(t, addr)
	s.Username, s.Password = "mailer", smtpPassword
	// Three attempts with at least 2·100ms between them: a Send that waited
	// for them would return after the failure was counted.
	q, _ := newSMTPMailer(t, s, Options{Log: log, Attempts: 3, MinBackoff: 200 * time.Millisecond, MaxBackoff: 400 * time.Millisecond})
	if err := q.Send(t.Context(), resetMessage("en")); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")); n != 0 {
		t.Fatal("Send returned only after the delivery had failed")
	}
	testsupport.Eventually(t, "the failure", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")) == 1 })
	if n := testutil.ToFloat64(q.metrics.retries.WithLabelValues("password_reset")); n != 2 {
		t.Errorf("retries %v", n)
	}
	out := logs.String()
	var final string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "mail not delivered") {
			final = line
		}
	}
	for _, want := range []string{`"level":"ERROR"`, `"kind":"password_reset"`, `"to":"a***@example.com"`, `"attempts":3`, "connection refused"} {
		if !strings.Contains(final, want) {
			t.Errorf("the failure's log record lacks %s: %s", want, final)
		}
	}
	checkNoSecrets(t, out)
}

// TestSMTPErrorsAreRedacted: a server that echoes the password, the link
// and the recipient in its refusals has them cut out of the log.
func TestSMTPErrorsAreRedacted(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t, "127.0.0.1")
	ts := startSMTP(t, "127.0.0.1", smtpOptions{tls: serverTLS, auth: true, authErr: func(pw string) error {
		return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad password " + pw + " for " + testLink + " alice@example.com"}
	}})
	s := serverFor(t, ts.Addr)
	s.Username, s.Password, s.TLSConfig = "mailer", smtpPassword, clientTLS
	log, logs := newLog()
	q, _ := newSMTPMailer(t, s, Options{Log: log, Attempts: 2})
	q.Send(t.Context(), resetMessage("en"))
	testsupport.Eventually(t, "the failure", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")) == 1 })
	out := logs.String()
	if !strings.Contains(out, "bad password [redacted]") {
		t.Errorf("the server's answer is not in the log, redacted:\n%s", out)
	}
	checkNoSecrets(t, out)
}

// TestHeaderInjectionRefused: a recipient with a header in it is never
// sent (RR-14).
func TestHeaderInjectionRefused(t *testing.T) {
	ts := startSMTP(t, "127.0.0.1", smtpOptions{})
	log, logs := newLog()
	q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Log: log})
	for _, to := range []string{"alice@example.com\r\nBcc: x@evil.test", "Alice <alice@example.com>", "alice@example.com, x@evil.test", "not-an-address"} {
		m := resetMessage("en")
		m.To = to
		q.Send(t.Context(), m)
	}
	testsupport.Eventually(t, "the failures", 10*time.Second, func() bool { return testutil.ToFloat64(q.metrics.failed.WithLabelValues("password_reset")) == 4 })
	if ts.mailCommands() != 0 {
		t.Fatal("a bad recipient reached the server")
	}
	checkNoSecrets(t, logs.String())
}

// TestQueueFullAndClose: with the one worker held by a slow server and the
// one queue slot taken, Send refuses at once with ErrQueueFull; Close then
// drains both; Send after Close is ErrClosed.
func TestQueueFullAndClose(t *testing.T) {
	hold := make(chan struct{})
	ts := startSMTP(t, "127.0.0.1", smtpOptions{hold: hold})
	q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Capacity: 1, Workers: 1})
	if err := q.Send(t.Context(), resetMessage("en")); err != nil {
		t.Fatal(err)
	}
	testsupport.Eventually(t, "the worker to take the first mail", 10*time.Second, func() bool { return len(q.jobs) == 0 && ts.mailCommands() == 1 })
	if err := q.Send(t.Context(), resetMessage("zh-CN")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := q.Send(t.Context(), resetMessage("en")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third Send: %v, want ErrQueueFull", err)
	}
	if d := time.Since(start); d > 2*time.Second { // a blocking Send would wait for the held server, for ever
		t.Errorf("a full queue blocked Send for %v", d)
	}
	if n := testutil.ToFloat64(q.metrics.dropped.WithLabelValues("password_reset")); n != 1 {
		t.Errorf("dropped %v", n)
	}
	if n := testutil.ToFloat64(q.metrics.depth); n != 1 {
		t.Errorf("queue depth %v", n)
	}
	closed := make(chan error, 1)
	go func() { closed <- q.Close(context.Background()) }()
	// Until Close has run, the full queue answers ErrQueueFull; then ErrClosed.
	testsupport.Eventually(t, "Send to answer ErrClosed", 10*time.Second, func() bool {
		err := q.Send(t.Context(), resetMessage("en"))
		if err != nil && !errors.Is(err, ErrQueueFull) && !errors.Is(err, ErrClosed) {
			t.Fatalf("Send while closing: %v", err)
		}
		return errors.Is(err, ErrClosed)
	})
	close(hold)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(ts.messages()); n != 2 {
		t.Fatalf("Close drained %d mails, want 2", n)
	}
}

// TestCloseGivesUpAtDeadline: Close waits no longer than its context, and
// says how many mails it left.
func TestCloseGivesUpAtDeadline(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	ts := startSMTP(t, "127.0.0.1", smtpOptions{hold: hold})
	log, logs := newLog()
	q, _ := newSMTPMailer(t, serverFor(t, ts.Addr), Options{Workers: 1, Log: log})
	q.Send(t.Context(), resetMessage("en"))
	q.Send(t.Context(), resetMessage("en"))
	testsupport.Eventually(t, "the worker to start", 10*time.Second, func() bool { return ts.mailCommands() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := q.Close(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 queued") {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
	if !strings.Contains(logs.String(), "mail queue not drained at shutdown") {
		t.Errorf("log:\n%s", logs)
	}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: time.Minute, 30: time.Minute} {
		for range 20 {
			got := backoff(n, time.Second, time.Minute)
			if got < want/2 || got > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, got, want/2, want)
			}
		}
	}
}

// checkNoSecrets fails if the log holds the link, its token, the SMTP
// password or the unmasked recipient.
func checkNoSecrets(t *testing.T, log string) {
	t.Helper()
	for _, s := range []string{testLink, "kwpr_AbCdEf", smtpPassword, "alice@example.com"} {
		if strings.Contains(log, s) {
			t.Errorf("the log holds %q:\n%s", s, log)
		}
	}
}
