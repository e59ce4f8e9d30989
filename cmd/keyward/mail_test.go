package main

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/internal/testsupport"
	"github.com/keyward/keyward/keys"
)

const (
	mailTestLink     = "http://localhost:8080/account/reset-password?token=kwpr_Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy"
	mailTestPassword = "smtp-Pa55word-never-logged"
)

// TestServeWritesMailToTheOutbox: serve with no --smtp-url creates the
// outbox (0700) beside the SQLite database, says so in the log and serves
// /metrics with the mail queue; mails written there are what `keyward mail
// list` and `keyward mail show` print.
func TestServeWritesMailToTheOutbox(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(t.TempDir()) // nothing lands in the working directory
	dsn := "sqlite:" + filepath.Join(dir, "data", "keyward.db")
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "--database", dsn, "--public-metrics")
	outbox := filepath.Join(dir, "data", mail.OutboxDirName)
	if !strings.Contains(s.Log.String(), `"outbox":"`+outbox+`"`) {
		t.Errorf("the log does not say where mail goes:\n%s", s.Log)
	}
	fi, err := os.Stat(outbox)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("outbox %v %v", fi, err)
	}
	code, body, _ := testsupport.Get(t, s.URL+"/metrics")
	if code != http.StatusOK || !strings.Contains(string(body), "keyward_mail_queue_depth 0") {
		t.Errorf("/metrics %d lacks the mail queue depth", code)
	}

	// The mails the account flows send through idp.Config.Mail, written
	// the way serve's sender writes them.
	sender, err := mail.NewOutbox(outbox, mail.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sender.Send(t.Context(), mail.Message{Kind: mail.KindVerifyEmail, To: "bob@example.com", Username: "bob", Link: "http://localhost:8080/account/verify-email?token=kwev_x", Expires: 24 * time.Hour})
	time.Sleep(5 * time.Millisecond)
	sender.Send(t.Context(), mail.Message{Kind: mail.KindPasswordReset, To: "alice@example.com", Lang: "zh-CN", Username: "alice", Link: mailTestLink, Expires: 30 * time.Minute})
	if err := sender.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	list := decode[[]map[string]any](t, mustRun(t, dsn, "", "mail", "list", "--output", "json"))
	if len(list) != 2 || list[0]["to"] != "<bob@example.com>" || list[1]["subject"] != "重置您的 Keyward 密码" || list[1]["n"] != float64(2) {
		t.Fatalf("mail list: %v", list)
	}
	table := mustRun(t, dsn, "", "mail", "list")
	if !strings.HasPrefix(table, "N ") || !strings.Contains(table, "重置您的 Keyward 密码") || !strings.Contains(table, outbox) {
		t.Errorf("mail list table:\n%s", table)
	}
	file := list[1]["file"].(string)
	for _, arg := range []string{"2", "last", file, filepath.Base(file)} {
		out := mustRun(t, dsn, "", "mail", "show", arg)
		if !strings.Contains(out, "\n"+mailTestLink+"\n") || !strings.Contains(out, "Subject:  重置您的 Keyward 密码") {
			t.Errorf("mail show %s:\n%s", arg, out)
		}
	}
	if raw := mustRun(t, dsn, "", "mail", "show", "1", "--raw"); !strings.Contains(raw, "multipart/alternative") {
		t.Errorf("mail show --raw:\n%s", raw)
	}
	js := decode[map[string]any](t, mustRun(t, dsn, "", "mail", "show", "2", "-o", "json"))
	if !strings.Contains(js["text"].(string), mailTestLink) || !strings.Contains(js["html"].(string), mailTestLink) {
		t.Errorf("mail show -o json: %v", js)
	}
	// --outbox names the directory directly.
	if l := decode[[]map[string]any](t, mustRun(t, "sqlite:elsewhere.db", "", "mail", "list", "--outbox", outbox, "-o", "json")); len(l) != 2 {
		t.Errorf("--outbox: %v", l)
	}

	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"number out of range", []string{"mail", "show", "3"}, "no mail 3 in " + outbox + ": it holds 2"},
		{"unknown file", []string{"mail", "show", "nope.eml"}, "no mail nope.eml"},
		{"zero", []string{"mail", "show", "0"}, "no mail 0 in"},
		{"missing outbox", []string{"mail", "list", "--outbox", filepath.Join(dir, "none")}, "no outbox at"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := run(t, dsn, "", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestServeSMTPLogsTheURLRedacted: with --smtp-url, the log names the
// server with its password masked, and warns when the password came on the
// command line rather than in KEYWARD_SMTP_URL.
func TestServeSMTPLogsTheURLRedacted(t *testing.T) {
	url := "smtp://mailer:" + mailTestPassword + "@127.0.0.1:2525"
	t.Run("from the environment", func(t *testing.T) {
		t.Chdir(t.TempDir())
		t.Setenv("KEYWARD_SMTP_URL", url)
		s := startServe(t, "--mail-from", "Keyward <noreply@example.com>")
		log := s.Log.String()
		if !strings.Contains(log, `"smtp_url":"smtp://mailer:xxxxx@127.0.0.1:2525"`) || strings.Contains(log, "command line") {
			t.Errorf("log:\n%s", log)
		}
		if strings.Contains(log, mailTestPassword) {
			t.Errorf("the log holds the SMTP password:\n%s", log)
		}
		if _, err := os.Stat(mail.OutboxDirName); err == nil {
			t.Error("an outbox was created although mail goes to SMTP")
		}
	})
	t.Run("on the command line", func(t *testing.T) {
		t.Chdir(t.TempDir())
		s := startServe(t, "--smtp-url", url, "--mail-from", "noreply@example.com")
		log := s.Log.String()
		if !strings.Contains(log, "KEYWARD_SMTP_URL instead") || strings.Contains(log, mailTestPassword) {
			t.Errorf("log:\n%s", log)
		}
	})
}

// TestServeMailConfig: the mail flags, from flags or variables, checked
// once; refusals name the flag and never repeat the SMTP password.
func TestServeMailConfig(t *testing.T) {
	kek64 := base64.StdEncoding.EncodeToString(keys.NewKEK())
	tmplDir := t.TempDir()
	os.WriteFile(filepath.Join(tmplDir, "password_changed.en.txt"), []byte(`{{define "subject"}}ACME notice{{end}}Changed.`), 0o600)
	brokenDir := t.TempDir()
	os.WriteFile(filepath.Join(brokenDir, "verify_email.zh-CN.html"), []byte(`{{.Link`), 0o600)

	good := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, m mailSetup)
	}{
		{"default: outbox beside the database", nil, nil, func(t *testing.T, m mailSetup) {
			if m.smtp != nil || m.outbox != mail.OutboxDirName || m.options.Capacity != mail.DefaultCapacity || m.options.From != "" {
				t.Errorf("%+v", m)
			}
		}},
		{"database elsewhere", nil, []string{"--database", "sqlite:/var/lib/keyward/k.db"}, func(t *testing.T, m mailSetup) {
			if m.outbox != "/var/lib/keyward/"+mail.OutboxDirName {
				t.Errorf("outbox %q", m.outbox)
			}
		}},
		{"PostgreSQL: the working directory", map[string]string{"KEYWARD_KEY_ENCRYPTION_KEY": kek64}, []string{"--database", "postgres://nobody@127.0.0.1:1/none"}, func(t *testing.T, m mailSetup) {
			if m.outbox != mail.OutboxDirName {
				t.Errorf("outbox %q", m.outbox)
			}
		}},
		{"outbox and queue size", nil, []string{"--mail-outbox", "/tmp/box", "--mail-queue-size", "5", "--mail-from", "ACME <id@acme.test>"}, func(t *testing.T, m mailSetup) {
			if m.outbox != "/tmp/box" || m.options.Capacity != 5 || m.options.From != "ACME <id@acme.test>" {
				t.Errorf("%+v", m)
			}
		}},
		{"SMTP from the environment", map[string]string{"KEYWARD_SMTP_URL": "smtps://u:" + mailTestPassword + "@mail.acme.test", "KEYWARD_MAIL_FROM": "id@acme.test"}, nil, func(t *testing.T, m mailSetup) {
			if m.smtp == nil || m.smtp.Host != "mail.acme.test" || m.smtp.Port != 465 || !m.smtp.ImplicitTLS || m.smtp.Password != mailTestPassword || m.smtpOnCmdArg || m.outbox != "" {
				t.Errorf("%+v", m)
			}
		}},
		{"SMTP on the command line", nil, []string{"--smtp-url", "smtp://u:" + mailTestPassword + "@mail.acme.test", "--mail-from", "id@acme.test"}, func(t *testing.T, m mailSetup) {
			if m.smtp == nil || m.smtp.Port != 587 || !m.smtpOnCmdArg {
				t.Errorf("%+v", m)
			}
		}},
		{"templates", nil, []string{"--mail-templates", tmplDir}, func(t *testing.T, m mailSetup) {
			r, err := m.options.Templates.Render(mail.Message{Kind: mail.KindPasswordChanged})
			if err != nil || r.Subject != "ACME notice" {
				t.Errorf("%+v %v", r, err)
			}
		}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			c, err := serveConfigOf(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c.mail)
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("checking the configuration created %v", entries)
			}
		})
	}

	bad := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"bad port", nil, []string{"--smtp-url", "smtp://u:" + mailTestPassword + "@mail.acme.test:99999", "--mail-from", "id@acme.test"}, `--smtp-url: port "99999" is not a number from 1 to 65535`},
		{"bad scheme", map[string]string{"KEYWARD_SMTP_URL": "http://u:" + mailTestPassword + "@mail.acme.test"}, []string{"--mail-from", "id@acme.test"}, "--smtp-url: the scheme must be smtp://"},
		{"not a URL", nil, []string{"--smtp-url", "smtp://u:" + mailTestPassword + "@mail.acme.test:x", "--mail-from", "id@acme.test"}, "--smtp-url: not a URL"},
		{"SMTP without a From", nil, []string{"--smtp-url", "smtp://u:" + mailTestPassword + "@mail.acme.test"}, "--smtp-url needs --mail-from"},
		{"SMTP and an outbox", nil, []string{"--smtp-url", "smtp://mail.acme.test", "--mail-from", "id@acme.test", "--mail-outbox", "x"}, "--mail-outbox and --smtp-url exclude each other"},
		{"bad From", nil, []string{"--mail-from", "not an address"}, "--mail-from: "},
		{"broken template", nil, []string{"--mail-templates", brokenDir}, "--mail-templates: mail template " + filepath.Join(brokenDir, "verify_email.zh-CN.html")},
		{"missing template dir", nil, []string{"--mail-templates", filepath.Join(brokenDir, "none")}, "--mail-templates: "},
		{"queue size", nil, []string{"--mail-queue-size", "0"}, "0 is not between 1 and 1048576"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			c, err := serveConfigOf(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if c != nil {
				t.Error("serve ran after a refused configuration")
			}
			if strings.Contains(err.Error(), mailTestPassword) {
				t.Errorf("the error repeats the SMTP password: %v", err)
			}
		})
	}
}
