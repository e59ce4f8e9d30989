package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	texttemplate "text/template"
	"time"
)

//go:embed templates/*.txt templates/*.html
var embedded embed.FS

// Kinds lists every Kind, in the order the documentation gives them.
var Kinds = []Kind{KindVerifyEmail, KindPasswordReset, KindPasswordChanged, KindPasswordWasReset, KindEmailChanged}

// Languages a template exists in; Message.Lang picks one (lang).
const (
	LangEnglish = "en"
	LangChinese = "zh-CN"
)

var languages = []string{LangEnglish, LangChinese}

// subjectTemplate is the template every text file defines for the Subject line.
const subjectTemplate = "subject"

// Templates are the parsed mail templates: for each Kind and language a text
// template, which also defines "subject", and an HTML one. Load them with
// LoadTemplates.
type Templates struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
}

// Rendered is a Message rendered by its templates.
type Rendered struct {
	Subject, Text, HTML string
}

// templateData is what a template sees; docs/mail.md lists the fields.
type templateData struct {
	Username string // the account's username
	To       string // the recipient address
	Link     string // the absolute link (verify_email, password_reset), else ""
	Expires  string // how long Link stays valid, in words of the language ("30 minutes")
	NewEmail string // email_changed: the new address, masked
}

// TemplateFile is the file name of the template of kind in lang; ext is
// "txt" or "html". A file of that name in the --mail-templates directory
// replaces the embedded one.
func TemplateFile(kind Kind, lang, ext string) string {
	return string(kind) + "." + lang + "." + ext
}

// LoadTemplates parses the embedded templates, each replaced by the file of
// the same name in dir when dir is not "" and holds one. Every template is
// parsed and executed once with sample values, so a template that does not
// parse, refers to an unknown field or lacks the subject fails here, named
// by its file; so does a .txt or .html file in dir that is no template's
// name (a typo would otherwise be ignored silently).
func LoadTemplates(dir string) (*Templates, error) {
	t := &Templates{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}}
	known := map[string]bool{}
	for _, k := range Kinds {
		for _, lang := range languages {
			for _, ext := range []string{"txt", "html"} {
				name := TemplateFile(k, lang, ext)
				known[name] = true
				src, origin, err := readTemplate(dir, name)
				if err != nil {
					return nil, err
				}
				if err := t.parse(k, lang, ext, origin, src); err != nil {
					return nil, err
				}
			}
		}
	}
	if dir != "" {
		if err := checkUnknown(dir, known); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// DefaultTemplates are the embedded templates; a test proves they load.
func DefaultTemplates() *Templates {
	t, err := LoadTemplates("")
	if err != nil {
		panic(err)
	}
	return t
}

// readTemplate returns the source of the template file name, from dir if it
// is there, else embedded, and where it came from (for error messages).
func readTemplate(dir, name string) ([]byte, string, error) {
	if dir != "" {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			return b, path, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, "", fmt.Errorf("mail template %s: %w", path, err)
		}
	}
	b, err := embedded.ReadFile("templates/" + name)
	if err != nil {
		return nil, "", fmt.Errorf("mail template %s: not embedded: %w", name, err)
	}
	return b, "embedded " + name, nil
}

func checkUnknown(dir string, known map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("mail templates: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		ext := filepath.Ext(n)
		if (ext == ".txt" || ext == ".html") && !known[n] {
			return fmt.Errorf("mail template %s: no template has this name (they are named like %s)",
				filepath.Join(dir, n), TemplateFile(KindPasswordReset, LangChinese, "html"))
		}
	}
	return nil
}

// sample is the data each template is tried with at load.
var sample = templateData{
	Username: "alice", To: "alice@example.com", Link: "https://id.example.com/account/reset-password?token=kwpr_sample",
	Expires: "30 minutes", NewEmail: "a***@example.net",
}

func (t *Templates) parse(k Kind, lang, ext, origin string, src []byte) error {
	key := string(k) + "." + lang
	if ext == "html" {
		ht, err := htmltemplate.New(origin).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return fmt.Errorf("mail template %s: %w", origin, err)
		}
		if err := ht.Execute(new(bytes.Buffer), sample); err != nil {
			return fmt.Errorf("mail template %s: %w", origin, err)
		}
		t.html[key] = ht
		return nil
	}
	tt, err := texttemplate.New(origin).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return fmt.Errorf("mail template %s: %w", origin, err)
	}
	if tt.Lookup(subjectTemplate) == nil {
		return fmt.Errorf(`mail template %s: no subject: the text template must define it, {{define "subject"}}...{{end}}`, origin)
	}
	var subj bytes.Buffer
	if err := tt.ExecuteTemplate(&subj, subjectTemplate, sample); err != nil {
		return fmt.Errorf("mail template %s: %w", origin, err)
	}
	if strings.TrimSpace(subj.String()) == "" {
		return fmt.Errorf("mail template %s: the subject is empty", origin)
	}
	if err := tt.Execute(new(bytes.Buffer), sample); err != nil {
		return fmt.Errorf("mail template %s: %w", origin, err)
	}
	t.text[key] = tt
	return nil
}

// Render renders m with the templates of its Kind and language.
func (t *Templates) Render(m Message) (Rendered, error) {
	lang := Lang(m.Lang)
	key := string(m.Kind) + "." + lang
	tt, ht := t.text[key], t.html[key]
	if tt == nil || ht == nil {
		return Rendered{}, fmt.Errorf("render mail: unknown kind %q", m.Kind)
	}
	d := templateData{Username: m.Username, To: m.To, Link: m.Link, NewEmail: m.NewEmail, Expires: duration(m.Expires, lang)}
	var subj, text, html bytes.Buffer
	if err := tt.ExecuteTemplate(&subj, subjectTemplate, d); err != nil {
		return Rendered{}, fmt.Errorf("render mail %s subject: %w", m.Kind, err)
	}
	if err := tt.Execute(&text, d); err != nil {
		return Rendered{}, fmt.Errorf("render mail %s text: %w", m.Kind, err)
	}
	if err := ht.Execute(&html, d); err != nil {
		return Rendered{}, fmt.Errorf("render mail %s html: %w", m.Kind, err)
	}
	return Rendered{Subject: oneLine(subj.String()), Text: strings.TrimSpace(text.String()) + "\n", HTML: html.String()}, nil
}

// Lang is the template language of a Message.Lang: "zh-CN" (in any case)
// for Simplified Chinese, "en" for anything else.
func Lang(lang string) string {
	if strings.EqualFold(lang, LangChinese) {
		return LangChinese
	}
	return LangEnglish
}

// oneLine makes s fit a header: control characters (a CR or LF would start
// a header of its own) become spaces, runs of spaces one.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// duration says d in words of lang, in the largest unit that divides it
// (30 minutes, 2 hours, 1 day), rounding odd values up to the next minute.
func duration(d time.Duration, lang string) string {
	if d <= 0 {
		return ""
	}
	mins := int((d + time.Minute - 1) / time.Minute)
	n, unit := mins, 0 // 0 minutes, 1 hours, 2 days
	switch {
	case mins%(24*60) == 0:
		n, unit = mins/(24*60), 2
	case mins%60 == 0:
		n, unit = mins/60, 1
	}
	if lang == LangChinese {
		return fmt.Sprintf("%d %s", n, [...]string{"分钟", "小时", "天"}[unit])
	}
	words := [...][2]string{{"minute", "minutes"}, {"hour", "hours"}, {"day", "days"}}[unit]
	if n == 1 {
		return "1 " + words[0]
	}
	return fmt.Sprintf("%d %s", n, words[1])
}
