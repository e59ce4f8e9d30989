package ui

import (
	"fmt"
	"net/http"

	"golang.org/x/text/language"
)

// Languages the pages speak, in the order the matcher prefers them: the
// first is the fallback for a browser that asks for none of them.
var languages = []struct {
	tag  language.Tag
	code string // the value of <html lang> and of Catalog's keys
}{
	{language.English, "en"},
	{language.SimplifiedChinese, "zh-CN"},
}

var matcher = func() language.Matcher {
	tags := make([]language.Tag, len(languages))
	for i, l := range languages {
		tags[i] = l.tag
	}
	return language.NewMatcher(tags)
}()

// Lang picks the page language from r's Accept-Language (RFC 9110
// §12.5.4): "en" or "zh-CN", English when the header is absent, malformed
// or names neither.
func Lang(r *http.Request) string {
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return languages[0].code
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return languages[0].code
	}
	return languages[i].code
}

// T returns the message key in lang, formatted with args (fmt verbs) when
// there are any. A key missing from the catalog comes back as itself, so a
// page shows something; TestCatalogComplete keeps that from happening.
func T(lang, key string, args ...any) string {
	m, ok := catalog[lang][key]
	if !ok {
		m, ok = catalog[languages[0].code][key]
	}
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(m, args...)
	}
	return m
}
