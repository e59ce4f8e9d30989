package manage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/keyward/keyward/idp/audit"
	"github.com/keyward/keyward/storage"
)

// ImportRecord is one line of an import file (JSON Lines), as an export from another
// system writes it. ID is optional: given, it keeps the user's subject id (a string or
// an integer); absent, the user gets a new one.
type ImportRecord struct {
	ID            json.RawMessage `json:"id,omitempty"`
	Username      string          `json:"username"`
	Email         string          `json:"email"`
	EmailVerified bool            `json:"email_verified"`
	PasswordHash  string          `json:"password_hash"`
	Disabled      bool            `json:"disabled"`
	CreatedAt     string          `json:"created_at,omitempty"` // RFC 3339
}

// LineError says why one line of an import cannot be imported. Reason never contains
// the password hash.
type LineError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// ImportError is the error of ParseImport when lines are bad: every one of them, in
// order (at most MaxReportedLineErrors).
type ImportError struct {
	Lines []LineError
	More  int // bad lines past those listed
}

// MaxReportedLineErrors bounds the bad lines an ImportError lists.
const MaxReportedLineErrors = 100

func (e *ImportError) Error() string {
	n := len(e.Lines) + e.More
	if n == 1 {
		return "1 bad line: " + e.Lines[0].Error()
	}
	return fmt.Sprintf("%d bad lines, the first: %s", n, e.Lines[0].Error())
}

// HashChecker says whether a stored hash can be checked at login (*password.Hasher's
// CheckStored): format, bounds and ceiling, hashing nothing.
type HashChecker interface {
	CheckStored(encoded string) error
}

// maxImportLine is the longest line of an import file, in bytes.
const maxImportLine = 64 << 10

// ParseImport reads an import file: one JSON object (ImportRecord) per line, blank
// lines ignored. It validates every line before returning (username and email rules,
// a password hash check can verify, an id and a created_at of the right form, no
// username or id twice in the file) and returns the users, with their line numbers,
// or an *ImportError listing the bad lines. maxLines > 0 refuses longer files.
func ParseImport(r io.Reader, check HashChecker, maxLines int) (users []storage.User, lines []int, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var bad ImportError
	fail := func(line int, reason string) {
		if len(bad.Lines) < MaxReportedLineErrors {
			bad.Lines = append(bad.Lines, LineError{line, reason})
		} else {
			bad.More++
		}
	}
	names := map[string]int{} // username key → line
	ids := map[string]int{}
	for n := 1; ; n++ {
		raw, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			fail(n, fmt.Sprintf("longer than %d bytes", maxImportLine))
			for errors.Is(rerr, bufio.ErrBufferFull) {
				_, rerr = br.ReadSlice('\n')
			}
			raw = nil
		} else if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, nil, fmt.Errorf("read import file: %w", rerr)
		}
		if raw = bytes.TrimSpace(raw); len(raw) > 0 {
			if maxLines > 0 && len(users)+len(bad.Lines)+bad.More >= maxLines {
				return nil, nil, fmt.Errorf("more than %d lines; import larger files in several requests or with the CLI", maxLines)
			}
			u, err := parseImportLine(raw, check)
			switch {
			case err != nil:
				fail(n, err.Error())
			case names[storage.UsernameKey(u.Username)] != 0:
				fail(n, fmt.Sprintf("username is the same as line %d's", names[storage.UsernameKey(u.Username)]))
			case u.ID != "" && ids[u.ID] != 0:
				fail(n, fmt.Sprintf("id is the same as line %d's", ids[u.ID]))
			default:
				names[storage.UsernameKey(u.Username)] = n
				if u.ID != "" {
					ids[u.ID] = n
				}
				users = append(users, u)
				lines = append(lines, n)
			}
		}
		if rerr != nil {
			break
		}
	}
	if len(bad.Lines) > 0 {
		return nil, nil, &bad
	}
	return users, lines, nil
}

// parseImportLine validates one line. Its errors name the field and the rule, never
// the hash.
func parseImportLine(raw []byte, check HashChecker) (storage.User, error) {
	var rec ImportRecord
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return storage.User{}, fmt.Errorf("not a JSON object: syntax error at byte %d", se.Offset)
		}
		return storage.User{}, fmt.Errorf("not an import record: %v", err)
	}
	if dec.More() {
		return storage.User{}, errors.New("more than one JSON value on the line")
	}
	name, err := NormalizeUsername(rec.Username)
	if err != nil {
		return storage.User{}, fmt.Errorf("username: %w", err)
	}
	email, err := NormalizeEmail(rec.Email)
	if err != nil {
		return storage.User{}, fmt.Errorf("email: %w", err)
	}
	if rec.EmailVerified && email == "" {
		return storage.User{}, errors.New("email_verified is true without an email")
	}
	if rec.PasswordHash == "" {
		return storage.User{}, errors.New("password hash is missing")
	}
	if err := check.CheckStored(rec.PasswordHash); err != nil {
		return storage.User{}, fmt.Errorf("password hash: %w", err)
	}
	id, err := importID(rec.ID)
	if err != nil {
		return storage.User{}, fmt.Errorf("id: %w", err)
	}
	u := storage.User{ID: id, Username: name, Email: email, EmailVerified: rec.EmailVerified,
		PasswordHash: rec.PasswordHash, Disabled: rec.Disabled}
	if rec.CreatedAt != "" {
		t, err := time.Parse(time.RFC3339Nano, rec.CreatedAt)
		if err != nil {
			return storage.User{}, errors.New("created_at is not an RFC 3339 time")
		}
		if t.After(time.Now().Add(time.Hour)) || t.Year() < 1970 {
			return storage.User{}, errors.New("created_at is in the future or before 1970")
		}
		u.CreatedAt = storage.At(t)
	}
	return u, nil
}

// maxIDLen is the longest subject id kept from an import.
const maxIDLen = 64

// importID reads an id: absent or null (a new one is made), a non-negative integer, or
// a string of 1 to 64 letters, digits, '-', '_', '.' or ':'.
func importID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("not a string or an integer")
		}
	} else {
		n, err := strconv.ParseUint(string(raw), 10, 63)
		if err != nil {
			return "", errors.New("not a string or a non-negative integer")
		}
		s = strconv.FormatUint(n, 10)
	}
	if s == "" || len(s) > maxIDLen {
		return "", fmt.Errorf("empty or longer than %d characters", maxIDLen)
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return "", errors.New("has a character other than letters, digits, '-', '_', '.', ':'")
		}
	}
	return s, nil
}

// ImportStore is the part of storage an import needs (*storage.DB).
type ImportStore interface {
	ImportUsers(ctx context.Context, us []storage.User, skipExisting bool) (skipped []int, err error)
}

// ImportOptions tune Ops.ImportUsers.
type ImportOptions struct {
	// Batch > 0 imports in transactions of that many users, each atomic; 0 imports
	// all in one. After a failed batch the earlier ones stand: run the same import
	// again with SkipExisting to resume.
	Batch int
	// SkipExisting skips users whose id or username exists, so a re-run imports only
	// what is missing; without it such a user fails its batch.
	SkipExisting bool
	// Progress, when set, is called after each batch with the users done so far.
	Progress func(done, total int)
}

// ImportSummary reports an import. Formats counts the imported users by the format of
// their password hash (argon2id, bcrypt, Werkzeug pbkdf2, ...).
type ImportSummary struct {
	Lines    int            `json:"lines"`
	Imported int            `json:"imported"`
	Skipped  int            `json:"skipped"`
	Batches  int            `json:"batches"`
	Formats  map[string]int `json:"formats"`
	Seconds  float64        `json:"seconds"`
}

// BatchError is the error of an import whose batch failed: the batches before it are
// stored (Summary says how many users), the failing one is not. Line is the line of the
// user that failed it, when one did.
type BatchError struct {
	Summary ImportSummary
	Line    int
	Err     error
}

func (e *BatchError) Error() string {
	where := ""
	if e.Line > 0 {
		where = fmt.Sprintf("line %d: ", e.Line)
	}
	if e.Summary.Imported == 0 {
		return fmt.Sprintf("nothing imported: %s%v", where, e.Err)
	}
	return fmt.Sprintf("%s%v; %d users of earlier batches are imported (run again with --skip-existing to resume)",
		where, e.Err, e.Summary.Imported)
}

func (e *BatchError) Unwrap() error { return e.Err }

// ImportUsers stores users (from ParseImport; lines are their line numbers, for errors)
// in one transaction or in atomic batches, and records one user_created event per
// batch (Reason "imported", Subject the batch's first and last ids and its size), not
// one per user. scheme names the format of a hash for the summary (password.Scheme).
func (o *Ops) ImportUsers(ctx context.Context, by audit.Event, users []storage.User, lines []int,
	scheme func(string) string, opts ImportOptions) (ImportSummary, error) {
	st, ok := o.store.(ImportStore)
	if !ok {
		return ImportSummary{}, errors.New("import users: the store cannot import")
	}
	start := time.Now()
	sum := ImportSummary{Lines: len(users), Formats: map[string]int{}}
	size := opts.Batch
	if size <= 0 || size > len(users) {
		size = max(len(users), 1)
	}
	for lo := 0; lo < len(users); lo += size {
		hi := min(lo+size, len(users))
		batch := users[lo:hi]
		skipped, err := st.ImportUsers(ctx, batch, opts.SkipExisting)
		if err != nil {
			sum.Seconds = time.Since(start).Seconds()
			be := &BatchError{Summary: sum, Err: err}
			var ie *storage.ImportError
			if errors.As(err, &ie) {
				be.Line, be.Err = lines[lo+ie.Index], ie.Err
			}
			return sum, be
		}
		skip := map[int]bool{}
		for _, i := range skipped {
			skip[i] = true
		}
		first, last := "", ""
		for i, u := range batch {
			if skip[i] {
				continue
			}
			if first == "" {
				first = u.ID
			}
			last = u.ID
			sum.Formats[scheme(u.PasswordHash)]++
		}
		sum.Batches++
		sum.Skipped += len(skipped)
		if n := len(batch) - len(skipped); n > 0 {
			sum.Imported += n
			ev := by
			ev.Reason = "imported"
			o.record(ctx, ev, audit.UserCreated, fmt.Sprintf("%s..%s (%d users)", first, last, n))
		}
		if opts.Progress != nil {
			opts.Progress(hi, len(users))
		}
	}
	sum.Seconds = time.Since(start).Seconds()
	return sum, nil
}
