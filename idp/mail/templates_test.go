package mail

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testLink = "https://id.example.com/account/reset-password?token=kwpr_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_ab"

func TestDefaultTemplatesRenderEveryKind(t *testing.T) {
	tmpl := DefaultTemplates()
	for _, k := range Kinds {
		for _, lang := range languages {
			t.Run(string(k)+"/"+lang, func(t *testing.T) {
				m := Message{Kind: k, To: "alice@example.com", Lang: lang, Username: "alice", Expires: 30 * time.Minute, NewEmail: "b***@example.net"}
				if k == KindPasswordReset || k == KindVerifyEmail {
					m.Link = testLink
				}
				r, err := tmpl.Render(m)
				if err != nil {
					t.Fatal(err)
				}
				if r.Subject == "" || strings.ContainsAny(r.Subject, "\r\n") {
					t.Errorf("subject %q", r.Subject)
				}
				if !strings.Contains(r.Text, "alice") || !strings.Contains(r.HTML, "alice") {
					t.Errorf("username missing:\n%s\n%s", r.Text, r.HTML)
				}
				if !strings.Contains(r.HTML, `lang="`+lang+`"`) {
					t.Errorf("html has no lang=%q", lang)
				}
				if m.Link != "" {
					if !strings.Contains(r.Text, testLink) || !strings.Contains(r.HTML, `href="`+testLink+`"`) {
						t.Errorf("link missing from a part:\n%s\n%s", r.Text, r.HTML)
					}
					want := map[string]string{LangEnglish: "30 minutes", LangChinese: "30 分钟"}[lang]
					if !strings.Contains(r.Text, want) || !strings.Contains(r.HTML, want) {
						t.Errorf("expiry %q missing", want)
					}
				} else if strings.Contains(r.Text, "http") || strings.Contains(r.HTML, "href") {
					t.Errorf("a notice carries a link:\n%s\n%s", r.Text, r.HTML)
				}
				if k == KindEmailChanged && (!strings.Contains(r.Text, "b***@example.net") || !strings.Contains(r.HTML, "b***@example.net")) {
					t.Errorf("new address missing")
				}
			})
		}
	}
}

// TestRenderGolden pins the key strings of both languages.
func TestRenderGolden(t *testing.T) {
	tmpl := DefaultTemplates()
	tests := []struct {
		name        string
		m           Message
		wantSubject string
		wantText    []string
	}{
		{"reset en", Message{Kind: KindPasswordReset, Lang: "en", Username: "alice", Link: testLink, Expires: time.Hour}, "Reset your Keyward password", []string{"Hello alice,", "within 1 hour:", "The link works once."}},
		{"reset zh-CN", Message{Kind: KindPasswordReset, Lang: "zh-CN", Username: "alice", Link: testLink, Expires: 30 * time.Minute}, "重置您的 Keyward 密码", []string{"alice，您好", "请在 30 分钟内", "该链接只能使用一次"}},
		{"reset lower-case zh-cn", Message{Kind: KindPasswordReset, Lang: "zh-cn", Username: "alice", Link: testLink, Expires: 30 * time.Minute}, "重置您的 Keyward 密码", nil},
		{"reset other language is English", Message{Kind: KindPasswordReset, Lang: "fr", Username: "alice", Link: testLink, Expires: 30 * time.Minute}, "Reset your Keyward password", nil},
		{"verify zh-CN", Message{Kind: KindVerifyEmail, Lang: "zh-CN", To: "alice@example.com", Username: "alice", Link: testLink, Expires: 24 * time.Hour}, "请确认您的电子邮件地址", []string{"1 天内", "alice@example.com"}},
		{"changed en", Message{Kind: KindPasswordChanged, Lang: "en", Username: "alice"}, "Your Keyward password was changed", []string{"was just changed"}},
		{"was reset zh-CN", Message{Kind: KindPasswordWasReset, Lang: "zh-CN", Username: "alice"}, "您的 Keyward 密码已重置", []string{"所有会话均已结束"}},
		{"email changed en", Message{Kind: KindEmailChanged, Lang: "en", Username: "alice", NewEmail: "b***@example.net"}, "The e-mail address of your Keyward account is changing", []string{"b***@example.net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tmpl.Render(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if r.Subject != tt.wantSubject {
				t.Errorf("subject %q, want %q", r.Subject, tt.wantSubject)
			}
			for _, w := range tt.wantText {
				if !strings.Contains(r.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, r.Text)
				}
			}
		})
	}
}

func TestRenderEscapesHTMLAndHeaders(t *testing.T) {
	r, err := DefaultTemplates().Render(Message{Kind: KindPasswordChanged, Username: `<script>x</script>`})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.HTML, "<script>") || !strings.Contains(r.HTML, "&lt;script&gt;") {
		t.Errorf("username not escaped in HTML:\n%s", r.HTML)
	}
	if got := oneLine("a\r\nBcc: x@evil.test\tb"); got != "a Bcc: x@evil.test b" {
		t.Errorf("oneLine = %q", got)
	}
	if _, err := DefaultTemplates().Render(Message{Kind: "nope"}); err == nil || !strings.Contains(err.Error(), `unknown kind "nope"`) {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		lang string
		want string
	}{
		{30 * time.Minute, LangEnglish, "30 minutes"},
		{time.Minute, LangEnglish, "1 minute"},
		{90 * time.Second, LangEnglish, "2 minutes"},
		{time.Hour, LangEnglish, "1 hour"},
		{90 * time.Minute, LangEnglish, "90 minutes"},
		{48 * time.Hour, LangEnglish, "2 days"},
		{30 * time.Minute, LangChinese, "30 分钟"},
		{2 * time.Hour, LangChinese, "2 小时"},
		{24 * time.Hour, LangChinese, "1 天"},
		{0, LangEnglish, ""},
	}
	for _, tt := range tests {
		if got := duration(tt.d, tt.lang); got != tt.want {
			t.Errorf("duration(%v, %s) = %q, want %q", tt.d, tt.lang, got, tt.want)
		}
	}
}

func TestLoadTemplatesFromDir(t *testing.T) {
	write := func(t *testing.T, dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a file replaces the embedded one, the others stay", func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "password_reset.en.txt", `{{define "subject"}}ACME password reset{{end}}Hi {{.Username}}, go to {{.Link}} ({{.Expires}}).`)
		write(t, dir, "README.md", "not a template, ignored")
		tmpl, err := LoadTemplates(dir)
		if err != nil {
			t.Fatal(err)
		}
		r, err := tmpl.Render(Message{Kind: KindPasswordReset, Username: "alice", Link: testLink, Expires: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if r.Subject != "ACME password reset" || r.Text != "Hi alice, go to "+testLink+" (1 hour).\n" {
			t.Errorf("override not used: %+v", r)
		}
		if !strings.Contains(r.HTML, "Set a new password") {
			t.Errorf("the embedded HTML was replaced too")
		}
		zh, _ := tmpl.Render(Message{Kind: KindPasswordReset, Lang: LangChinese, Username: "alice", Link: testLink})
		if zh.Subject != "重置您的 Keyward 密码" {
			t.Errorf("zh-CN subject %q", zh.Subject)
		}
	})
	tests := []struct {
		name, file, body, wantErr string
	}{
		{"does not parse", "verify_email.zh-CN.html", `<p>{{.Link</p>`, "verify_email.zh-CN.html"},
		{"unknown field", "password_changed.en.html", `<p>{{.Password}}</p>`, "password_changed.en.html"},
		{"text without a subject", "email_changed.en.txt", `Hello {{.Username}}`, "no subject"},
		{"empty subject", "email_changed.en.txt", `{{define "subject"}} {{end}}Hello`, "subject is empty"},
		{"unknown name", "password-reset.en.txt", `{{define "subject"}}x{{end}}`, "password-reset.en.txt: no template has this name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tt.file, tt.body)
			_, err := LoadTemplates(dir)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("err = %v, want one naming %s and %q", err, dir, tt.wantErr)
			}
		})
	}
	if _, err := LoadTemplates(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing directory loaded")
	}
}
