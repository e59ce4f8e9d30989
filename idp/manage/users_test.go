package manage

import (
	"errors"
	"testing"
)

// TestNormalizeNewUsername: a new username is of one script, or of one of
// UTS #39's Highly Restrictive combinations; digits and punctuation go with
// any script.
func TestNormalizeNewUsername(t *testing.T) {
	tests := []struct {
		name, username string
		wantErr        error // nil: accepted
	}{
		{"Latin", "alice", nil},
		{"Latin with digits and punctuation", "alice.smith-2", nil},
		{"Latin with a diacritic", "alicė", nil},
		{"Cyrillic", "наталья", nil},
		{"Greek", "αλέξης", nil},
		{"Japanese with Latin", "山田たろうTaro", nil},
		{"Korean with Han", "김金", nil},
		{"Devanagari", "नमस्ते", nil},
		{"Cyrillic a among Latin", "\u0430lice", ErrMixedScripts},
		{"Greek omicron among Latin", "b\u03bfb", ErrMixedScripts},
		{"Latin and Cyrillic words", "paypal\u0430", ErrMixedScripts},
		{"Hangul with Hiragana", "김たろう", ErrMixedScripts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NormalizeNewUsername(tt.username)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("NormalizeNewUsername(%q) = %v, want %v", tt.username, err, tt.wantErr)
			}
		})
	}
	if _, err := NormalizeNewUsername("al ice"); err == nil || errors.Is(err, ErrMixedScripts) {
		t.Errorf("a space: %v, want NormalizeUsername's error", err)
	}
}
