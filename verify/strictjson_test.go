package verify

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyward/keyward/internal/testsupport"
)

// TestDecodeObject checks the strict parser on the inputs AC-J11 and AC-J18 name, and
// on JSON it must read exactly as encoding/json does.
func TestDecodeObject(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string // "" means it must equal encoding/json's reading
	}{
		{"plain", `{"a":"b","n":1.5e3,"t":true,"f":false,"z":null,"arr":[1,"x",{"y":[]}],"o":{}}`, ""},
		{"whitespace", " \t\r\n{ \"a\" : [ 1 , 2 ] } \n", ""},
		{"escapes", `{"s":"\"\\\/\b\f\n\r\t\u006eone\u00e9\ud83d\ude00"}`, ""},
		{"lone surrogates", `{"s":"\ud83d x \ude00 \ud83d\u0041"}`, ""},
		{"empty object", `{}`, ""},
		{"negative zero and exponent", `{"a":-0,"b":0.5E-2,"c":-12e+3}`, ""},
		{"duplicate", `{"alg":"RS256","alg":"none"}`, "duplicate"},
		{"case variant", `{"alg":"none","ALG":"RS256"}`, "duplicate"},
		{"escaped duplicate", `{"alg":"RS256","\u0061lg":"none"}`, "duplicate"},
		{"nested duplicate", `{"a":{"x":1,"X":2}}`, "duplicate"},
		{"duplicate after 20 members", `{` + manyMembers(20) + `,"m7":1}`, "duplicate"},
		{"too deep", `{"x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20) + `}`, "too deep"},
		{"trailing data", `{"a":1}{"b":2}`, "after"},
		{"trailing comma", `{"a":1,}`, "invalid"},
		{"leading zero", `{"a":01}`, "invalid"},
		{"bare minus", `{"a":-}`, "invalid"},
		{"dot without digits", `{"a":1.}`, "invalid"},
		{"control character", "{\"a\":\"x\ny\"}", "invalid"},
		{"bad escape", `{"a":"\x"}`, "invalid"},
		{"short unicode escape", `{"a":"\u12"}`, "invalid"},
		{"invalid utf-8", "{\"a\":\"\xff\"}", "utf-8"},
		{"single quotes", `{'a':1}`, "invalid"},
		{"array at top", `[1]`, "not a json object"},
		{"unterminated", `{"a":"b`, "invalid"},
		{"literal prefix", `{"a":tru}`, "invalid"},
		{"non-string name", `{1:2}`, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeObject([]byte(tt.in))
			if testsupport.WantError(t, err, tt.wantErr) {
				return
			}
			if want := stdDecode(t, tt.in); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, encoding/json reads %#v", got, want)
			}
		})
	}
}

func manyMembers(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"m` + string(rune('0'+i%10)) + strings.Repeat("x", i/10) + `":1`)
	}
	return b.String()
}

func stdDecode(t testing.TB, in string) map[string]any {
	d := json.NewDecoder(strings.NewReader(in))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return m
}

// FuzzDecodeObject compares the strict parser with encoding/json: whatever it accepts,
// encoding/json must read the same way; whatever encoding/json accepts without duplicate
// names, deep nesting or invalid UTF-8, it must accept too.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":[1,{"b":"\u00e9"}],"c":-1.5e3}`, `{"a":1,"A":2}`, `{"s":"\ud83d\ude00"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := decodeObject([]byte(in))
		var want map[string]any
		d := json.NewDecoder(strings.NewReader(in))
		d.UseNumber()
		stdErr := d.Decode(&want)
		if stdErr == nil && d.More() {
			stdErr = errSyntax // trailing data
		}
		if err == nil {
			if stdErr != nil {
				t.Fatalf("accepted %q, encoding/json: %v", in, stdErr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: got %#v, encoding/json %#v", in, got, want)
			}
			return
		}
		if stdErr == nil && utf8.ValidString(in) && !strings.Contains(err.Error(), "duplicate") &&
			!strings.Contains(err.Error(), "too deep") && !strings.Contains(err.Error(), "after") {
			t.Fatalf("rejected %q (%v), encoding/json accepts it", in, err)
		}
	})
}
