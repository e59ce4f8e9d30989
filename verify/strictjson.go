package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in a header or payload (AC-J18). Access tokens nest two or
// three levels at most; anything deeper is refused before it costs anything.
const maxJSONDepth = 16

// decodeObject parses one JSON object (RFC 8259) into a map, as encoding/json would into
// map[string]any with UseNumber, but refuses what encoding/json lets through silently
// (RS-11, AC-J11): a member name that appears twice in one object, or twice up to case
// (encoding/json keeps the last duplicate and matches struct fields case-insensitively).
// It also refuses nesting deeper than maxJSONDepth, invalid UTF-8 and anything after
// the object. It is a small hand-written parser because the warm Verify path runs it
// twice per token and encoding/json's token stream costs more than the rest of Verify
// apart from the RSA operation. The input is copied into one string once; names and
// values without escapes are substrings of it, so they cost no further allocation.
func decodeObject(data []byte) (map[string]any, error) {
	p := parser{data: string(data)}
	p.skipSpace()
	if p.peek() != '{' {
		return nil, errors.New("not a json object")
	}
	m, err := p.object(1)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.data) {
		return nil, errors.New("data after the json object")
	}
	return m, nil
}

type parser struct {
	data string
	i    int
}

var errSyntax = errors.New("invalid json")

func (p *parser) peek() byte {
	if p.i < len(p.data) {
		return p.data[p.i]
	}
	return 0
}

func (p *parser) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses an object starting at '{'.
func (p *parser) object(depth int) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("json nested too deep")
	}
	p.i++ // '{'
	m := make(map[string]any, 8)
	var buf [16]string
	names := buf[:0]
	var folded map[string]struct{}
	p.skipSpace()
	if p.peek() == '}' {
		p.i++
		return m, nil
	}
	for {
		p.skipSpace()
		if p.peek() != '"' {
			return nil, errSyntax
		}
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		if err := checkName(name, names, &folded); err != nil {
			return nil, err
		}
		names = append(names, name)
		p.skipSpace()
		if p.peek() != ':' {
			return nil, errSyntax
		}
		p.i++
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		m[name] = v
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
		case '}':
			p.i++
			return m, nil
		default:
			return nil, errSyntax
		}
	}
}

// array parses an array starting at '['.
func (p *parser) array(depth int) ([]any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("json nested too deep")
	}
	p.i++ // '['
	a := []any{}
	p.skipSpace()
	if p.peek() == ']' {
		p.i++
		return a, nil
	}
	for {
		v, err := p.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return a, nil
		default:
			return nil, errSyntax
		}
	}
}

// value parses any JSON value; depth is that of the enclosing container.
func (p *parser) value(depth int) (any, error) {
	p.skipSpace()
	switch c := p.peek(); {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case p.literal("true"):
		return true, nil
	case p.literal("false"):
		return false, nil
	case p.literal("null"):
		return nil, nil
	}
	return nil, errSyntax
}

func (p *parser) literal(lit string) bool {
	if strings.HasPrefix(p.data[p.i:], lit) {
		p.i += len(lit)
		return true
	}
	return false
}

// number parses an RFC 8259 §6 number and keeps its text.
func (p *parser) number() (json.Number, error) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.data) && '0' <= p.data[p.i] && p.data[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.peek() == '-' {
		p.i++
	}
	switch {
	case p.peek() == '0':
		p.i++
	case digits() == 0:
		return "", errSyntax
	}
	if p.peek() == '.' {
		p.i++
		if digits() == 0 {
			return "", errSyntax
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if digits() == 0 {
			return "", errSyntax
		}
	}
	return json.Number(p.data[start:p.i]), nil
}

// str parses a string starting at '"'. Strings without escapes, the usual case, are a
// single copy.
func (p *parser) str() (string, error) {
	p.i++ // '"'
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := p.data[start:p.i]
			p.i++
			if !utf8.ValidString(s) {
				return "", errors.New("invalid utf-8 in json string")
			}
			return s, nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", errSyntax
		}
		p.i++
	}
	return "", errSyntax
}

// escaped finishes a string that contains escapes (RFC 8259 §7); the text from start to
// p.i has none. Lone surrogates become U+FFFD, as in encoding/json.
func (p *parser) escaped(start int) (string, error) {
	buf := append(make([]byte, 0, p.i-start+16), p.data[start:p.i]...)
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(buf) {
				return "", errors.New("invalid utf-8 in json string")
			}
			return string(buf), nil
		case c < 0x20:
			return "", errSyntax
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		p.i++ // '\\'
		switch e := p.peek(); e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, ok := p.hex4(p.i + 1)
			if !ok {
				return "", errSyntax
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := p.hex4(p.i + 3); ok && p.data[p.i+1] == '\\' && p.data[p.i+2] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						p.i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", errSyntax
		}
		p.i++
	}
	return "", errSyntax
}

// hex4 reads four hex digits at i.
func (p *parser) hex4(i int) (rune, bool) {
	if i+4 > len(p.data) {
		return 0, false
	}
	var r rune
	for _, c := range p.data[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// checkName refuses name when an earlier member of the same object has the same name up
// to case. Small objects are scanned; large ones (AC-J18: thousands of members) use a
// map so the check stays linear.
func checkName(name string, names []string, folded *map[string]struct{}) error {
	const scanLimit = 16
	if len(names) < scanLimit {
		for _, n := range names {
			if strings.EqualFold(n, name) {
				return fmt.Errorf("duplicate json member %.40q", name)
			}
		}
		return nil
	}
	if *folded == nil {
		*folded = make(map[string]struct{}, 2*len(names))
		for _, n := range names {
			(*folded)[strings.ToLower(n)] = struct{}{}
		}
	}
	key := strings.ToLower(name)
	if _, dup := (*folded)[key]; dup {
		return fmt.Errorf("duplicate json member %.40q", name)
	}
	(*folded)[key] = struct{}{}
	return nil
}
