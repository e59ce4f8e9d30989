package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxJSONDepth bounds nesting in a header or payload (AC-J18). Access tokens nest
// two or three levels at most; anything deeper is refused before it costs anything.
const maxJSONDepth = 16

// decodeObject reads one JSON object, as encoding/json would, but refuses what
// encoding/json lets through silently (RS-11, AC-J11): a member name that appears twice
// in one object, or twice up to case (encoding/json takes the last duplicate and matches
// struct fields case-insensitively), nesting deeper than maxJSONDepth, and anything
// after the object. Numbers stay json.Number so their type and range can be checked.
func decodeObject(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a json object")
	}
	m, err := readObject(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the json object")
	}
	return m, nil
}

// readObject reads the members of an object whose '{' was consumed, and its '}'.
func readObject(dec *json.Decoder, depth int) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("json nested too deep")
	}
	m := make(map[string]any, 8)
	var folded map[string]struct{} // lower-cased names, once the object grows large
	names := make([]string, 0, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, errors.New("json member name is not a string")
		}
		if err := checkName(name, names, &folded); err != nil {
			return nil, err
		}
		names = append(names, name)
		v, err := readValue(dec, depth)
		if err != nil {
			return nil, err
		}
		m[name] = v
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return m, nil
}

// checkName refuses name when an earlier member of the same object has the same name up
// to case. Small objects are scanned; large ones (AC-J18: 10,000 members) use a map so
// the check stays linear.
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

// readValue reads one value: a nested object or array, or a scalar token.
func readValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		return readObject(dec, depth+1)
	case json.Delim('['):
		if depth+1 > maxJSONDepth {
			return nil, errors.New("json nested too deep")
		}
		var a []any
		for dec.More() {
			v, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		if _, err := dec.Token(); err != nil { // ']'
			return nil, err
		}
		if a == nil {
			a = []any{}
		}
		return a, nil
	}
	return tok, nil
}
