package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/keyward/keyward/idp/mail"
	"github.com/keyward/keyward/storage"
)

// mailFlags are serve's mail flags (docs/mail.md): where account mail goes
// (--smtp-url, or the development outbox), who it is from, and the
// templates. config checks them once; mailSetup.open builds the sender.
type mailFlags struct {
	smtpURL, mailFrom, mailTemplates, mailOutbox string
	mailQueueSize                                int
}

func (f *mailFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.smtpURL, "smtp-url", "",
		"send account mail through this server: smtp://user:password@host:port (STARTTLS required unless the host is loopback) or smtps://… (implicit TLS); "+
			"prefer KEYWARD_SMTP_URL, as a command line is readable by every local user. Without it, mail goes to the development outbox (--mail-outbox)")
	markSecret(fl, "smtp-url", secretURL)
	fl.StringVar(&f.mailFrom, "mail-from", "", `From address of account mail, such as "Keyward <noreply@example.com>"; required with --smtp-url (outbox default: `+mail.DefaultFrom+`)`)
	fl.StringVar(&f.mailTemplates, "mail-templates", "", "directory of mail templates; a file there replaces the embedded one of the same name (docs/mail.md)")
	fl.StringVar(&f.mailOutbox, "mail-outbox", "", "without --smtp-url, write each mail as an .eml file into this directory (default: "+mail.OutboxDirName+
		" beside the SQLite database, or in the working directory for PostgreSQL); read it with keyward mail list")
	f.mailQueueSize = mail.DefaultCapacity
	fl.Var(intIn(&f.mailQueueSize, 1, 1<<20), "mail-queue-size", "mails waiting to be sent; when full, more are dropped (and logged) rather than delay an answer")
}

// mailSetup is the checked mail configuration: an SMTP server, or an
// outbox directory, and the sender's options.
type mailSetup struct {
	smtp         *mail.SMTPServer // nil: the outbox
	outbox       string
	options      mail.Options
	smtpOnCmdArg bool // --smtp-url with a password came on the command line: serve warns
}

// config checks the mail flags against the database dsn; it reads the
// template directory but creates nothing.
func (f *mailFlags) config(dsn string, onCommandLine bool) (mailSetup, error) {
	tmpl, err := mail.LoadTemplates(f.mailTemplates)
	if err != nil {
		return mailSetup{}, fmt.Errorf("--mail-templates: %w", err)
	}
	m := mailSetup{options: mail.Options{From: f.mailFrom, Templates: tmpl, Capacity: f.mailQueueSize}}
	if f.mailFrom != "" {
		if err := mail.CheckFrom(f.mailFrom); err != nil {
			return mailSetup{}, fmt.Errorf("--mail-from: %w", err)
		}
	}
	if f.smtpURL == "" {
		m.outbox = f.mailOutbox
		if m.outbox == "" {
			m.outbox = defaultOutbox(dsn)
		}
		return m, nil
	}
	if f.mailOutbox != "" {
		return mailSetup{}, errors.New("--mail-outbox and --smtp-url exclude each other: mail goes either to the SMTP server or to the outbox")
	}
	s, err := mail.ParseSMTPURL(f.smtpURL)
	if err != nil {
		return mailSetup{}, fmt.Errorf("--smtp-url: %w", err) // never the URL: it may hold the password
	}
	if f.mailFrom == "" {
		return mailSetup{}, errors.New(`--smtp-url needs --mail-from, such as "Keyward <noreply@example.com>"`)
	}
	m.smtp = &s
	m.smtpOnCmdArg = onCommandLine && s.Password != ""
	return m, nil
}

// defaultOutbox is keyward-outbox beside a SQLite database file (as
// keyward.kek is), or in the working directory for PostgreSQL.
func defaultOutbox(dsn string) string {
	if path, ok := storage.SQLitePath(dsn); ok {
		return filepath.Join(filepath.Dir(path), mail.OutboxDirName)
	}
	return mail.OutboxDirName
}

// open builds the sender, logging where mail goes (the SMTP URL without
// its password, or the outbox directory).
func (m mailSetup) open(log *slog.Logger) (*mail.Mailer, error) {
	o := m.options
	o.Log = log
	if m.smtp != nil {
		if m.smtpOnCmdArg {
			log.Warn("--smtp-url carries the SMTP password on the command line, where every local user can read it; set KEYWARD_SMTP_URL instead")
		}
		s, err := mail.NewSMTP(*m.smtp, o)
		if err != nil {
			return nil, err
		}
		log.Info("account mail goes to the SMTP server", "smtp_url", m.smtp.String(), "from", o.From)
		return s, nil
	}
	s, err := mail.NewOutbox(m.outbox, o)
	if err != nil {
		return nil, fmt.Errorf("--mail-outbox: %w", err)
	}
	log.Info("no --smtp-url: account mail is written to the development outbox; read it with keyward mail list", "outbox", m.outbox)
	return s, nil
}

// closeMail drains the mail queue at shutdown, for up to timeout; Close
// logs what it could not deliver.
func closeMail(ctx context.Context, s *mail.Mailer, timeout time.Duration) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	s.Close(cctx)
}
