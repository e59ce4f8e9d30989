package mail

import (
	"strings"
	"testing"

	gomail "github.com/wneessen/go-mail"
)

func TestParseSMTPURL(t *testing.T) {
	const pw = "s3cr3t-Pa55"
	good := []struct {
		name, url string
		want      SMTPServer
		redacted  string
	}{
		{"starttls with auth", "smtp://mailer:" + pw + "@mail.example.com:2525", SMTPServer{Host: "mail.example.com", Port: 2525, Username: "mailer", Password: pw}, "smtp://mailer:xxxxx@mail.example.com:2525"},
		{"default port 587", "smtp://mail.example.com", SMTPServer{Host: "mail.example.com", Port: 587}, "smtp://mail.example.com:587"},
		{"smtps default port 465", "smtps://u:" + pw + "@mail.example.com", SMTPServer{Host: "mail.example.com", Port: 465, Username: "u", Password: pw, ImplicitTLS: true}, "smtps://u:xxxxx@mail.example.com:465"},
		{"percent-encoded password", "smtp://u%40example.com:p%2Fw%3A@[::1]:25", SMTPServer{Host: "::1", Port: 25, Username: "u@example.com", Password: "p/w:"}, "smtp://u%40example.com:xxxxx@[::1]:25"},
		{"user without password", "smtp://relay@127.0.0.1:25/", SMTPServer{Host: "127.0.0.1", Port: 25, Username: "relay"}, "smtp://relay@127.0.0.1:25"},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSMTPURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.redacted {
				t.Errorf("String() = %q, want %q", got.String(), tt.redacted)
			}
		})
	}
	bad := []struct {
		name, url, wantErr string
	}{
		{"bad port", "smtp://u:" + pw + "@mail.example.com:99999", `port "99999"`},
		{"port not a number", "smtp://u:" + pw + "@mail.example.com:x1", "not a URL"},
		{"wrong scheme", "http://u:" + pw + "@mail.example.com", "smtps://"},
		{"no scheme", "mail.example.com:587", "scheme"},
		{"no host", "smtp://u:" + pw + "@:587", "no host"},
		{"opaque", "smtp:u:" + pw + "@mail.example.com", "no host"},
		{"path", "smtp://u:" + pw + "@mail.example.com/x", "path"},
		{"query", "smtp://u:" + pw + "@mail.example.com?tls=no", "query"},
		{"password without user", "smtp://:" + pw + "@mail.example.com", "without a user"},
		{"unescaped slash", "smtp://u:pa/" + pw + "@mail.example.com", ""},
		{"control character", "smtp://u:" + pw + "\n@mail.example.com", "not a URL"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSMTPURL(tt.url)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err %q, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "mail.example.com") {
				t.Errorf("the error echoes the URL: %q", err)
			}
		})
	}
}

// TestTLSPolicy is the policy decision: STARTTLS is mandatory unless the
// host is loopback; smtps is TLS from the first byte.
func TestTLSPolicy(t *testing.T) {
	tests := []struct {
		host     string
		implicit bool
		want     gomail.TLSPolicy
		ssl      bool
	}{
		{"mail.example.com", false, gomail.TLSMandatory, false},
		{"192.0.2.10", false, gomail.TLSMandatory, false},
		{"localhost.example.com", false, gomail.TLSMandatory, false},
		{"127.0.0.2", false, gomail.TLSOpportunistic, false},
		{"localhost", false, gomail.TLSOpportunistic, false},
		{"LOCALHOST", false, gomail.TLSOpportunistic, false},
		{"::1", false, gomail.TLSOpportunistic, false},
		{"::ffff:127.0.0.1", false, gomail.TLSOpportunistic, false},
		{"mail.example.com", true, gomail.TLSMandatory, true},
		{"127.0.0.1", true, gomail.TLSMandatory, true},
	}
	for _, tt := range tests {
		p, ssl := tlsPolicy(tt.host, tt.implicit)
		if p != tt.want || ssl != tt.ssl {
			t.Errorf("tlsPolicy(%q, %v) = %v, %v; want %v, %v", tt.host, tt.implicit, p, ssl, tt.want, tt.ssl)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com": "a***@example.com",
		"张三@example.cn":     "张***@example.cn",
		"@example.com":      "***@example.com",
		"nobody":            "***",
		"":                  "***",
	} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewSMTPChecksFrom(t *testing.T) {
	s := SMTPServer{Host: "mail.example.com", Port: 587}
	if _, err := NewSMTP(s, Options{}); err == nil || !strings.Contains(err.Error(), "--mail-from") {
		t.Errorf("no From: %v", err)
	}
	if _, err := NewSMTP(s, Options{From: "Keyward <noreply@example.com>\r\nBcc: x@evil.test"}); err == nil {
		t.Error("a From with a header in it was accepted")
	}
	q, err := NewSMTP(s, Options{From: "Keyward <noreply@example.com>"})
	if err != nil {
		t.Fatal(err)
	}
	q.Close(t.Context())
}
