package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTPServer is a parsed --smtp-url: smtp://[user[:password]@]host[:port]
// (STARTTLS; port 587 by default) or smtps://… (implicit TLS; port 465).
type SMTPServer struct {
	Host, Username, Password string
	Port                     int
	ImplicitTLS              bool // smtps://
	// TLSConfig, if set, is cloned for the connection (tests trust their
	// own CA with it); ServerName is always Host.
	TLSConfig *tls.Config
}

// ParseSMTPURL parses an SMTP URL. Its errors never contain the URL or the
// password, only the part at fault.
func ParseSMTPURL(raw string) (SMTPServer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return SMTPServer{}, errors.New("not a URL such as smtp://user:password@host:587 (a reserved character in the user or password must be percent-encoded)")
	}
	var s SMTPServer
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.ImplicitTLS = true
	default:
		return SMTPServer{}, errors.New("the scheme must be smtp:// (STARTTLS) or smtps:// (implicit TLS)")
	}
	if u.Opaque != "" || u.Host == "" {
		return SMTPServer{}, errors.New("no host: write smtp://user:password@host:port")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPServer{}, errors.New("a path, query or fragment has no meaning here: write smtp://user:password@host:port")
	}
	s.Host = u.Hostname()
	if s.Host == "" {
		return SMTPServer{}, errors.New("no host: write smtp://user:password@host:port")
	}
	s.Port = 587
	if s.ImplicitTLS {
		s.Port = 465
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return SMTPServer{}, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		s.Port = n
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
		if s.Username == "" {
			return SMTPServer{}, errors.New("a password without a user name")
		}
	}
	return s, nil
}

// String is the URL with the password replaced by xxxxx, for logs.
func (s SMTPServer) String() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port))}
	if s.ImplicitTLS {
		u.Scheme = "smtps"
	}
	switch {
	case s.Password != "":
		u.User = url.UserPassword(s.Username, "xxxxx")
	case s.Username != "":
		u.User = url.User(s.Username)
	}
	return u.String()
}

// tlsPolicy decides how a connection to host is protected: implicit TLS
// for smtps; else STARTTLS, mandatory unless the host is loopback, where
// a local relay without TLS is allowed (opportunistic: TLS if offered).
func tlsPolicy(host string, implicitTLS bool) (policy gomail.TLSPolicy, ssl bool) {
	switch {
	case implicitTLS:
		return gomail.TLSMandatory, true // TLS from the first byte (go-mail skips STARTTLS then)
	case loopbackHost(host):
		return gomail.TLSOpportunistic, false
	}
	return gomail.TLSMandatory, false
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// smtpTransport delivers over SMTP with go-mail, one connection per
// attempt (account mail is rare; a held connection would only go stale).
type smtpTransport struct{ s SMTPServer }

// NewSMTP returns a Mailer that delivers to the SMTP server s.
func NewSMTP(s SMTPServer, o Options) (*Mailer, error) {
	if s.Host == "" {
		return nil, errors.New("mail: no SMTP host")
	}
	if o.From == "" {
		return nil, errors.New("mail: SMTP delivery needs a From address (--mail-from)")
	}
	if err := CheckFrom(o.From); err != nil {
		return nil, err
	}
	return newMailer(smtpTransport{s: s}, o), nil
}

func (t smtpTransport) String() string { return t.s.String() }
func (t smtpTransport) secret() string { return t.s.Password }

func (t smtpTransport) client(ctx context.Context) (*gomail.Client, error) {
	policy, ssl := tlsPolicy(t.s.Host, t.s.ImplicitTLS)
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.s.TLSConfig != nil {
		tc = t.s.TLSConfig.Clone()
	}
	tc.ServerName = t.s.Host
	opts := []gomail.Option{
		gomail.WithPort(t.s.Port), gomail.WithTLSPolicy(policy), gomail.WithTLSConfig(tc),
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, gomail.WithTimeout(max(time.Until(dl), time.Millisecond)))
	}
	if ssl {
		opts = append(opts, gomail.WithSSL())
	}
	if t.s.Username != "" {
		// The strongest mechanism the server offers; PLAIN and LOGIN only
		// over TLS (go-mail refuses them in clear).
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(t.s.Username), gomail.WithPassword(t.s.Password))
	}
	return gomail.NewClient(t.s.Host, opts...)
}

func (t smtpTransport) deliver(ctx context.Context, _ Message, msg *gomail.Msg) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, msg)
}

// permanent: the server refused with a 5xx (no such mailbox, message
// refused); connection failures, timeouts and 4xx answers are retried.
func (smtpTransport) permanent(err error) bool {
	var se *gomail.SendError
	return errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500
}

// CheckFrom checks a From address: one address, with an optional name
// ("Keyward <noreply@example.com>").
func CheckFrom(from string) error {
	if err := gomail.NewMsg().From(from); err != nil || strings.ContainsAny(from, "\r\n") {
		return fmt.Errorf("mail: the From address %q is not an address such as \"Keyward <noreply@example.com>\"", from)
	}
	return nil
}
