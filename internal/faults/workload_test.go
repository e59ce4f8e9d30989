package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/bench/load"
)

// Kinds of request the load sends.
const (
	kindClientCredentials = "client_credentials"
	kindPassword          = "password"
	kindRefresh           = "refresh"
	kindRegister          = "register"
)

// Classes of answer.
const (
	ansOK          = "ok"           // 2xx with a parseable body
	ansUnavailable = "unavailable"  // 503, Retry-After, temporarily_unavailable
	ansServerError = "server_error" // another 5xx with RFC 6749 JSON
	ansRefused     = "refused"      // the connection was refused: never accepted
	ansNoAnswer    = "no_answer"    // the connection broke without an answer
	ansCut         = "cut"          // an answer started but its body is cut or unparseable
	ansRejected    = "rejected"     // a 4xx
)

// hangBound is the longest any request may take, whatever the fault: a
// client must get its answer, or its 503, in bounded time.
const hangBound = 10 * time.Second

// answer is what one request got.
type answer struct {
	kind   string
	class  string
	status int
	code   string // the OAuth error code
	token  tokenResponse
	at     time.Time // when the answer arrived
	took   time.Duration
	err    error
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Status       string `json:"status"` // registration
}

// chain is one login's refresh tokens, as its client saw them: every token
// answered 200, oldest first. The last is the head, the one to use next.
type chain struct {
	tokens []string
	ready  time.Time // not rotated again before this (see workload.pace)
	dead   bool      // its acknowledged head was refused: already counted lost
}

func (c *chain) head() string { return c.tokens[len(c.tokens)-1] }

// registration is an account the load asked for.
type registration struct {
	username string
	answered bool // 202 came back
	noAnswer bool // the connection broke without an answer
}

// workload is a small mixed load on keyward servers and the ledger of
// what they acknowledged, to check afterwards that nothing was lost.
type workload struct {
	t      *testing.T
	c      *cluster
	http   *http.Client
	kinds  []string
	chains []*chain
	// pace is the least time between two rotations of one chain: longer
	// than the faultinject build's commit delay, so its negative control
	// loses writes only to the fault, not to reading a row not yet
	// committed.
	pace time.Duration
	// checkReplay, after each rotation, presents the used token again: it
	// must get the same successor (the reuse window), never a second one.
	checkReplay bool
	// allow5xx accepts a 5xx other than 503 as retryable (a connection
	// killed under a transaction); otherwise it is a violation.
	allow5xx bool
	// onAccess, when set, sees every access token issued.
	onAccess func(base, token string)

	mu       sync.Mutex
	targets  []string
	counts   map[string]map[string]int // kind → answer class → count
	events   []answer                  // every answer, for timelines
	regs     []*registration
	regSeq   atomic.Int64
	problems []string // violations seen during the load
	lost     []string // acknowledged writes found missing
	maxTook  time.Duration
}

func newWorkload(t *testing.T, c *cluster, targets []string, kinds ...string) *workload {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &workload{
		t: t, c: c, kinds: kinds, targets: targets, pace: 700 * time.Millisecond,
		counts: map[string]map[string]int{},
		http: &http.Client{
			Timeout: 20 * time.Second,
			// A new connection per request: a refused connection then
			// tells a request never accepted from one cut mid-way.
			Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		},
	}
}

// setTargets replaces the servers the load is spread over.
func (w *workload) setTargets(targets ...string) {
	w.mu.Lock()
	w.targets = targets
	w.mu.Unlock()
}

func (w *workload) target() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.targets[rand.IntN(len(w.targets))]
}

func (w *workload) problem(format string, args ...any) {
	w.mu.Lock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

func (w *workload) lose(format string, args ...any) {
	w.mu.Lock()
	w.lost = append(w.lost, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

// do sends one request and classifies the answer; record counts it under
// kind.
func (w *workload) do(ctx context.Context, kind string, req *http.Request, record bool) answer {
	t0 := time.Now()
	res, err := w.http.Do(req.WithContext(ctx))
	a := answer{kind: kind, at: time.Now(), took: time.Since(t0), err: err}
	if err != nil {
		var op *net.OpError
		switch {
		case ctx.Err() != nil:
			return a // the load ended; not counted
		case errors.As(err, &op) && op.Op == "dial":
			a.class = ansRefused
		default:
			a.class = ansNoAnswer
		}
	} else {
		a.status = res.StatusCode
		body, rerr := io.ReadAll(res.Body)
		res.Body.Close()
		perr := json.Unmarshal(body, &a.token)
		a.code = a.token.Error
		switch {
		case rerr != nil || perr != nil:
			a.class, a.err = ansCut, fmt.Errorf("status %d, body %q: %v %v", res.StatusCode, body, rerr, perr)
		case res.StatusCode < 300:
			a.class = ansOK
		case res.StatusCode == http.StatusServiceUnavailable && load.HasRetryAfter(res.Header) && a.code == "temporarily_unavailable":
			a.class = ansUnavailable
		case res.StatusCode >= 500 && a.code != "":
			a.class = ansServerError
		case res.StatusCode >= 500:
			a.class, a.err = ansCut, fmt.Errorf("status %d without an OAuth error: %q", res.StatusCode, body)
		default:
			a.class = ansRejected
		}
	}
	if retryable(a) {
		// A client backs off before it retries; the load does too, briefly,
		// so an outage is not a busy loop.
		defer time.Sleep(50 * time.Millisecond)
	}
	if record {
		w.mu.Lock()
		if w.counts[kind] == nil {
			w.counts[kind] = map[string]int{}
		}
		w.counts[kind][a.class]++
		w.events = append(w.events, a)
		w.maxTook = max(w.maxTook, a.took)
		w.mu.Unlock()
		if a.took > hangBound {
			w.problem("%s: %s after %v, past the bound of %v", kind, a.class, a.took.Round(time.Millisecond), hangBound)
		}
		switch {
		case a.class == ansCut:
			w.problem("%s: answer cut or malformed: %v", kind, a.err)
		case a.class == ansServerError && !w.allow5xx:
			w.problem("%s: %d %s where only 503 temporarily_unavailable may answer", kind, a.status, a.code)
		case a.class == ansUnavailable && a.status != http.StatusServiceUnavailable:
			w.problem("%s: %d", kind, a.status)
		}
	}
	return a
}

// retryable reports whether an answer leaves the request to be retried.
func retryable(a answer) bool {
	switch a.class {
	case ansUnavailable, ansServerError, ansRefused, ansNoAnswer:
		return true
	}
	return false
}

func (w *workload) tokenRequest(base string, form url.Values) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, w.c.secret)
	return req
}

func passwordForm(user string) url.Values {
	return url.Values{"grant_type": {"password"}, "username": {user}, "password": {userPassword}, "scope": {scope}}
}

func refreshForm(token string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}}
}

// login starts n chains with the password grant (setup, before any fault).
func (w *workload) login(ctx context.Context, n int) {
	w.t.Helper()
	for i := range n {
		a := w.do(ctx, kindPassword, w.tokenRequest(w.target(), passwordForm(w.c.users[i%len(w.c.users)])), false)
		if a.class != ansOK || a.token.RefreshToken == "" {
			w.t.Fatalf("setup login: %s %d %s %v", a.class, a.status, a.code, a.err)
		}
		w.chains = append(w.chains, &chain{tokens: []string{a.token.RefreshToken}, ready: time.Now().Add(w.pace)})
	}
}

// run sends the load from workers goroutines until ctx ends. Worker i owns
// the chains i, i+workers, ..., so each chain's rotations run in order.
func (w *workload) run(ctx context.Context, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []*chain
			for j := i; j < len(w.chains); j += workers {
				mine = append(mine, w.chains[j])
			}
			for n := i; ctx.Err() == nil; n++ {
				kind := w.kinds[n%len(w.kinds)]
				if kind == kindRefresh {
					if ch := readyChain(mine); ch != nil {
						w.rotate(ctx, ch)
						continue
					}
					time.Sleep(20 * time.Millisecond) // every chain waits out its pace
					continue
				}
				w.one(ctx, kind)
			}
		}()
	}
	return &wg
}

func readyChain(cs []*chain) *chain {
	now := time.Now()
	for _, c := range cs {
		if !c.dead && now.After(c.ready) {
			return c
		}
	}
	return nil
}

// one sends a request of a kind that keeps no chain.
func (w *workload) one(ctx context.Context, kind string) {
	base := w.target()
	switch kind {
	case kindClientCredentials:
		a := w.do(ctx, kind, w.tokenRequest(base, url.Values{"grant_type": {"client_credentials"}}), true)
		w.access(base, a)
	case kindPassword:
		a := w.do(ctx, kind, w.tokenRequest(base, passwordForm(w.c.users[rand.IntN(len(w.c.users))])), true)
		w.access(base, a)
	case kindRegister:
		r := &registration{username: fmt.Sprintf("reg%d", w.regSeq.Add(1))}
		body, _ := json.Marshal(map[string]string{"username": r.username, "password": userPassword, "email": r.username + "@example.com"})
		req, _ := http.NewRequest(http.MethodPost, base+"/account/register", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		a := w.do(ctx, kind, req, true)
		if a.class == "" {
			return
		}
		r.answered = a.class == ansOK && a.status == http.StatusAccepted
		r.noAnswer = a.class == ansNoAnswer
		if !r.answered && !r.noAnswer {
			return // refused: nothing to check later
		}
		if a.class == ansRejected {
			w.problem("register: %d %s", a.status, a.code)
		}
		w.mu.Lock()
		w.regs = append(w.regs, r)
		w.mu.Unlock()
	}
}

func (w *workload) access(base string, a answer) {
	if a.class == ansOK && w.onAccess != nil {
		w.onAccess(base, a.token.AccessToken)
	}
	if a.class == ansRejected {
		w.problem("%d %s", a.status, a.code)
	}
}

// rotate presents the chain's head once. 200: the successor becomes the
// head. A retryable answer: the head stays, to be presented again. A
// refusal of an acknowledged head: a lost (or forked) write.
func (w *workload) rotate(ctx context.Context, ch *chain) {
	base := w.target()
	old := ch.head()
	a := w.do(ctx, kindRefresh, w.tokenRequest(base, refreshForm(old)), true)
	switch {
	case a.class == "":
	case a.class == ansOK && a.token.RefreshToken != "" && a.token.RefreshToken != old:
		w.access(base, a)
		ch.tokens = append(ch.tokens, a.token.RefreshToken)
		ch.ready = time.Now().Add(w.pace)
		if w.checkReplay {
			w.replay(ctx, ch, old, a.token.RefreshToken)
		}
	case retryable(a):
		ch.ready = time.Now().Add(100 * time.Millisecond)
	case a.class == ansRejected && a.code == "invalid_grant":
		ch.dead = true
		w.lose("refresh chain of %d rotations: its acknowledged head was refused (invalid_grant) during the load", len(ch.tokens)-1)
	default:
		ch.dead = true
		w.problem("refresh: %s %d %s %v", a.class, a.status, a.code, a.err)
	}
}

// replay presents old, just rotated to succ, again: within the reuse
// window it must give succ back, never a new branch, nor refuse it (a
// half-rotated family).
func (w *workload) replay(ctx context.Context, ch *chain, old, succ string) {
	for range 20 {
		a := w.do(ctx, kindRefresh+"_replay", w.tokenRequest(w.target(), refreshForm(old)), true)
		switch {
		case a.class == "":
			return
		case a.class == ansOK && a.token.RefreshToken == succ:
			return
		case a.class == ansOK:
			ch.dead = true
			w.lose("refresh family forked: a retry of a rotated token got a second successor")
			return
		case retryable(a):
			time.Sleep(100 * time.Millisecond)
		default:
			ch.dead = true
			w.lose("a retry of a just-rotated token was refused (%d %s): the family is half-rotated or lost", a.status, a.code)
			return
		}
	}
	w.problem("a retry of a just-rotated token got no answer in 20 tries")
}

// until retries f (which returns whether the answer is final) until it is,
// or for 15 s.
func until(f func() (answer, bool)) answer {
	deadline := time.Now().Add(15 * time.Second)
	for {
		a, done := f()
		if done || time.Now().After(deadline) {
			return a
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verify checks, on base, that every write acknowledged before is there:
// each live chain's head rotates and its predecessor is then refused (no
// second branch), and each account whose registration was answered signs
// in. An unanswered registration that nonetheless took effect is reported
// by the returned count.
func (w *workload) verify(ctx context.Context, base string) (chainsOK, regsOK, unansweredDone int) {
	final := func(form url.Values) answer {
		return until(func() (answer, bool) {
			a := w.do(ctx, "verify", w.tokenRequest(base, form), false)
			return a, !retryable(a)
		})
	}
	for i, ch := range w.chains {
		if ch.dead {
			continue
		}
		a := final(refreshForm(ch.head()))
		if a.class != ansOK || a.token.RefreshToken == "" {
			w.lose("chain %d: its head, acknowledged after %d rotations, is refused: %s %d %s", i, len(ch.tokens)-1, a.class, a.status, a.code)
			continue
		}
		if len(ch.tokens) >= 2 {
			p := final(refreshForm(ch.tokens[len(ch.tokens)-2]))
			if p.class != ansRejected || p.code != "invalid_grant" {
				w.lose("chain %d: the token before its head still works (%s %d): the family forked", i, p.class, p.status)
				continue
			}
		}
		chainsOK++
	}
	for _, r := range w.regs {
		a := final(passwordForm(r.username))
		switch {
		case r.answered && a.class != ansOK:
			w.lose("registration of %s was answered 202 but the account cannot sign in: %s %d %s", r.username, a.class, a.status, a.code)
		case r.answered:
			regsOK++
		case r.noAnswer && a.class == ansOK:
			unansweredDone++
		}
	}
	return chainsOK, regsOK, unansweredDone
}

// summary is the counts, for the test's log.
func (w *workload) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	kinds := make([]string, 0, len(w.counts))
	for k := range w.counts {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	total := 0
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  %-20s", k)
		classes := make([]string, 0)
		for c := range w.counts[k] {
			classes = append(classes, c)
		}
		slices.Sort(classes)
		for _, c := range classes {
			fmt.Fprintf(&b, " %s %d", c, w.counts[k][c])
			total += w.counts[k][c]
		}
	}
	rot := 0
	for _, ch := range w.chains {
		rot += len(ch.tokens) - 1
	}
	fmt.Fprintf(&b, "\n  %d requests, %d refresh rotations acknowledged over %d chains, %d registrations answered of %d; slowest answer %v",
		total, rot, len(w.chains), countAnswered(w.regs), len(w.regs), w.maxTook.Round(time.Millisecond))
	return b.String()
}

func countAnswered(rs []*registration) int {
	n := 0
	for _, r := range rs {
		if r.answered {
			n++
		}
	}
	return n
}

// report fails the test with every violation and lost write, or, for a
// negative control, fails it unless the checker found lost writes.
func (w *workload) report(faulty bool) {
	w.t.Helper()
	w.t.Logf("load:%s", w.summary())
	w.mu.Lock()
	problems, lost := w.problems, w.lost
	w.mu.Unlock()
	w.t.Logf("lost writes: %d", len(lost))
	if faulty {
		if len(lost) == 0 {
			w.t.Fatalf("negative control: the server acknowledged before committing, yet the checker found no lost write")
		}
		w.t.Logf("negative control: the checker found %d lost writes, e.g. %s", len(lost), lost[0])
		return
	}
	for _, p := range problems[:min(len(problems), 10)] {
		w.t.Errorf("violation: %s", p)
	}
	if len(problems) > 10 {
		w.t.Errorf("and %d more violations", len(problems)-10)
	}
	for _, l := range lost[:min(len(lost), 10)] {
		w.t.Errorf("lost: %s", l)
	}
	if len(lost) > 10 {
		w.t.Errorf("and %d more lost writes", len(lost)-10)
	}
}
