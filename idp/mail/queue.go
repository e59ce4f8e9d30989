package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	gomail "github.com/wneessen/go-mail"
)

// Errors Send returns; the caller logs them (without the link) and answers
// as if the mail had gone.
var (
	ErrQueueFull = errors.New("mail: queue full")
	ErrClosed    = errors.New("mail: sender closed")
)

// Defaults of Options.
const (
	DefaultCapacity    = 1000
	DefaultWorkers     = 2
	DefaultAttempts    = 5
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = time.Minute
	DefaultSendTimeout = 30 * time.Second
	DefaultFrom        = "Keyward <noreply@localhost>" // the outbox's; SMTP needs a real one
)

// Options tune a Mailer; zero fields take the defaults above.
type Options struct {
	From        string     // the From address ("Keyward <noreply@example.com>")
	Templates   *Templates // nil: the embedded ones
	Capacity    int        // queue capacity
	Workers     int        // delivering goroutines, 1 or 2 make sense
	Attempts    int        // delivery attempts per mail, the first included
	MinBackoff  time.Duration
	MaxBackoff  time.Duration // the wait before attempt n+1 is MinBackoff·2^(n-1), at most this, jittered
	SendTimeout time.Duration // one attempt's limit
	Log         *slog.Logger
	Now         func() time.Time
}

// transport delivers one composed message: over SMTP, or into the outbox.
type transport interface {
	deliver(ctx context.Context, m Message, msg *gomail.Msg) error
	// permanent reports whether err will not go away on a retry.
	permanent(err error) bool
	// secret is what the transport must never see logged (the SMTP password).
	secret() string
	// String says where mail goes, for the log; no secrets.
	String() string
}

// Mailer is the Sender: a bounded queue in front of a transport. Build it
// with NewSMTP or NewOutbox; Close it at shutdown.
type Mailer struct {
	t       transport
	o       Options
	log     *slog.Logger
	metrics *metrics

	mu     sync.RWMutex // guards closed against Send's channel write
	closed bool
	jobs   chan job
	wg     sync.WaitGroup

	stop   context.Context // canceled when Close gives up waiting
	cancel context.CancelFunc
}

var _ Sender = (*Mailer)(nil)

// job is one queued message, with the context of the Send that queued it
// (without its cancellation), so log records keep its request id.
type job struct {
	ctx context.Context
	m   Message
}

func newMailer(t transport, o Options) *Mailer {
	if o.From == "" {
		o.From = DefaultFrom
	}
	if o.Templates == nil {
		o.Templates = DefaultTemplates()
	}
	if o.Capacity <= 0 {
		o.Capacity = DefaultCapacity
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	q := &Mailer{t: t, o: o, log: o.Log, jobs: make(chan job, o.Capacity)}
	q.metrics = newMetrics(func() int { return len(q.jobs) })
	q.stop, q.cancel = context.WithCancel(context.Background())
	q.wg.Add(o.Workers)
	for range o.Workers {
		go q.work()
	}
	return q
}

// String says where mail goes (the SMTP URL without its password, or the
// outbox directory).
func (q *Mailer) String() string { return q.t.String() }

// Register puts the mailer's metrics on r (keyward_mail_*).
func (q *Mailer) Register(r prometheus.Registerer) error {
	for _, c := range q.metrics.collectors() {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register mail metrics: %w", err)
		}
	}
	return nil
}

// Send queues m and returns at once: ErrQueueFull when the queue is full,
// ErrClosed after Close, else nil. Delivery, retries and the logging of a
// failure happen behind it.
func (q *Mailer) Send(ctx context.Context, m Message) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	kind := kindLabel(m.Kind)
	if q.closed {
		q.metrics.dropped.WithLabelValues(kind).Inc()
		return ErrClosed
	}
	select {
	case q.jobs <- job{ctx: context.WithoutCancel(ctx), m: m}:
		q.metrics.queued.WithLabelValues(kind).Inc()
		return nil
	default:
		q.metrics.dropped.WithLabelValues(kind).Inc()
		return ErrQueueFull
	}
}

// Close stops taking mail and delivers what is queued, retries included,
// until ctx ends; then it cancels the attempts under way, logs how many
// mails were left undelivered and returns an error saying so.
func (q *Mailer) Close(ctx context.Context) error {
	q.mu.Lock()
	if !q.closed {
		q.closed = true
		close(q.jobs)
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		q.cancel()
		return nil
	case <-ctx.Done():
	}
	left := len(q.jobs)
	q.cancel() // the workers fail what is left, each logged, without waiting
	q.log.ErrorContext(ctx, "mail queue not drained at shutdown", "queued", left)
	return fmt.Errorf("mail: close: %d queued mails not delivered: %w", left, ctx.Err())
}

func (q *Mailer) work() {
	defer q.wg.Done()
	for j := range q.jobs {
		q.process(j)
	}
}

// process renders j, then delivers it in up to Attempts attempts, waiting
// a jittered, growing backoff between them; a permanent error (an SMTP 5xx)
// ends the retries early.
func (q *Mailer) process(j job) {
	kind := kindLabel(j.m.Kind)
	attrs := []any{"kind", j.m.Kind, "to", Mask(j.m.To)}
	fail := func(attempts int, err error) {
		q.metrics.failed.WithLabelValues(kind).Inc()
		q.log.ErrorContext(j.ctx, "mail not delivered", append(attrs, "attempts", attempts, "err", redact(err, j.m, q.t.secret()))...)
	}
	r, err := q.o.Templates.Render(j.m)
	if err != nil {
		fail(0, err)
		return
	}
	msg, err := compose(q.o.From, j.m, r, q.o.Now())
	if err != nil {
		fail(0, err)
		return
	}
	for attempt := 1; ; attempt++ {
		if q.stop.Err() != nil {
			fail(attempt-1, errors.New("shutting down"))
			return
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(q.stop, q.o.SendTimeout)
		err = q.t.deliver(actx, j.m, msg)
		cancel()
		outcome := "ok"
		if err != nil {
			outcome = "error"
		}
		q.metrics.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		if err == nil {
			q.metrics.sent.WithLabelValues(kind).Inc()
			q.log.InfoContext(j.ctx, "mail sent", append(attrs, "attempts", attempt)...)
			return
		}
		if attempt >= q.o.Attempts || q.t.permanent(err) {
			fail(attempt, err)
			return
		}
		wait := backoff(attempt, q.o.MinBackoff, q.o.MaxBackoff)
		q.metrics.retries.WithLabelValues(kind).Inc()
		q.log.WarnContext(j.ctx, "mail delivery failed; retrying",
			append(attrs, "attempt", attempt, "retry_in", wait.String(), "err", redact(err, j.m, q.t.secret()))...)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stop.Done():
			t.Stop()
		}
	}
}

// backoff is the wait after failed attempt n (1-based): min·2^(n-1), at most
// max, of which a random half is taken off (jitter) so that mails failing
// together do not retry together.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(half+1)
}
