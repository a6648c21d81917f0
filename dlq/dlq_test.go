package dlq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/dlq"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/memory"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// fast keeps tests from waiting for empty receives longer than needed.
var fast = dlq.ScanOptions{ReceiveWait: 200 * time.Millisecond}

func open(t testing.TB, e *env, consumer string) *dlq.Queue {
	t.Helper()
	q, err := dlq.Open(context.Background(), e.p, topic, consumer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func ids(ls []dlq.Letter) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.ID
	}
	slices.Sort(out)
	return out
}

func TestListDescribesLettersAndGivesThemBack(t *testing.T) {
	e := newEnv(t)
	old := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Millisecond)
	e.deadLetter(t, "email",
		letter{id: "a", typ: "OrderPlaced", reason: providers.ReasonPermanent, at: old},
		letter{id: "b", typ: "OrderPaid", reason: providers.ReasonMaxAttempts},
		letter{id: "junk", raw: []byte("not an envelope"), reason: providers.ReasonMalformed})
	q := open(t, e, "email")
	ctx := context.Background()

	for round := range 2 { // the second round proves the first gave them back
		ls, err := q.List(ctx, fast)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ls); !slices.Equal(got, []string{"a", "b", "junk"}) {
			t.Fatalf("round %d: listed %v, want a, b, junk", round, got)
		}
		for _, l := range ls {
			if l.Data != nil {
				t.Errorf("List filled the payload of %s", l.ID)
			}
			switch l.ID {
			case "a":
				if l.Type != "OrderPlaced" || l.Reason != providers.ReasonPermanent ||
					l.Error != "boom a" || l.Consumer != "email" || l.Attempts != 1 ||
					!l.DeadLetteredAt.Equal(old) || l.Size != len("data of a") ||
					l.Attributes["tenant"] != "t1" || l.DecodeError != "" {
					t.Errorf("letter a = %+v", l)
				}
			case "junk":
				if l.DecodeError == "" || !strings.Contains(l.DecodeError, "malformed") ||
					l.Reason != providers.ReasonMalformed || l.Size != len("not an envelope") {
					t.Errorf("malformed letter = %+v, want its decode error", l)
				}
			}
		}
	}
	if n := e.count(t, "email"); n != 3 {
		t.Errorf("the queue holds %d letters after listing, want 3", n)
	}

	ls, err := q.Peek(ctx, dlq.ScanOptions{Filter: dlq.Filter{IDs: []string{"junk", "b"}},
		ReceiveWait: fast.ReceiveWait})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		want := "data of b"
		if l.ID == "junk" {
			want = "not an envelope"
		}
		if string(l.Data) != want {
			t.Errorf("peek %s: data %q, want %q", l.ID, l.Data, want)
		}
	}
	if len(ls) != 2 {
		t.Errorf("peek by ID returned %d letters, want 2", len(ls))
	}
}

func TestFilters(t *testing.T) {
	e := newEnv(t)
	old := time.Now().Add(-48 * time.Hour)
	e.deadLetter(t, "email",
		letter{id: "p1", typ: "OrderPlaced", reason: providers.ReasonPermanent, at: old},
		letter{id: "p2", typ: "OrderPaid", reason: providers.ReasonPermanent},
		letter{id: "m1", typ: "OrderPlaced", reason: providers.ReasonMaxAttempts},
		letter{id: "x", raw: []byte("{}"), reason: providers.ReasonMalformed, at: old})
	q := open(t, e, "email")
	cases := []struct {
		name string
		f    dlq.Filter
		want []string
	}{
		{"all", dlq.Filter{}, []string{"m1", "p1", "p2", "x"}},
		{"reason", dlq.Filter{Reasons: []string{providers.ReasonPermanent}}, []string{"p1", "p2"}},
		{"type", dlq.Filter{Types: []string{"OrderPlaced"}}, []string{"m1", "p1"}},
		{"id", dlq.Filter{IDs: []string{"x", "nope"}}, []string{"x"}},
		{"older", dlq.Filter{OlderThan: 24 * time.Hour}, []string{"p1", "x"}},
		{"newer", dlq.Filter{NewerThan: time.Hour}, []string{"m1", "p2"}},
		{"and", dlq.Filter{Types: []string{"OrderPlaced"}, OlderThan: time.Hour}, []string{"p1"}},
	}
	for _, c := range cases {
		ls, err := q.List(context.Background(), dlq.ScanOptions{Filter: c.f,
			ReceiveWait: fast.ReceiveWait})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(ls); !slices.Equal(got, c.want) {
			t.Errorf("%s: listed %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRedriveReachesOnlyTheFailedConsumer(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("o", "OrderPlaced", providers.ReasonPermanent, 25)...)
	e.drain(t, "warehouse")
	q := open(t, e, "email")

	rep, err := q.Redrive(context.Background(), dlq.RedriveOptions{ScanOptions: fast})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 25 || rep.Failed != 0 || rep.Skipped != 0 || rep.Remaining != 0 {
		t.Errorf("report %+v, want 25 moved, 0 remaining", rep)
	}
	got := e.drain(t, "email")
	if len(got) != 25 {
		t.Fatalf("email got %d messages back, want 25", len(got))
	}
	for _, d := range got {
		m, err := herald.Decode(d)
		if err != nil {
			t.Fatal(err)
		}
		if d.Attempt != 1 || !strings.HasPrefix(m.ID, "o-") || m.Type != "OrderPlaced" ||
			string(m.Data) != "data of "+m.ID || m.Attributes["tenant"] != "t1" {
			t.Errorf("redriven %+v (attempt %d), want the message as sent, attempt 1", m, d.Attempt)
		}
		for k := range d.Attributes {
			if strings.HasPrefix(k, "herald-") {
				t.Errorf("redriven message keeps attribute %s", k)
			}
		}
	}
	if n := len(e.drain(t, "warehouse")); n != 0 {
		t.Errorf("warehouse got %d messages from email's redrive, want 0", n)
	}
}

func TestRedriveMovesAMalformedLetterAsIs(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letter{id: "junk", raw: []byte("legacy record"),
		reason: providers.ReasonMalformed})
	rep, err := open(t, e, "email").Redrive(context.Background(),
		dlq.RedriveOptions{ScanOptions: fast})
	if err != nil || rep.Moved != 1 {
		t.Fatalf("redrive of a malformed letter: %+v, %v", rep, err)
	}
	got := e.drain(t, "email")
	if len(got) != 1 || string(got[0].Body) != "legacy record" || got[0].ID != "junk" {
		t.Errorf("email got %d messages back, want the legacy record once", len(got))
	}
}

func TestRedriveFilterDryRunAndLimit(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("a", "OrderPlaced", providers.ReasonPermanent, 10)...)
	e.deadLetter(t, "email", letters("b", "OrderPaid", providers.ReasonMaxAttempts, 5)...)
	q := open(t, e, "email")
	ctx := context.Background()

	rep, err := q.Redrive(ctx, dlq.RedriveOptions{ScanOptions: fast, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || rep.Moved != 15 || rep.Remaining != 15 {
		t.Errorf("dry run %+v, want 15 would move and 15 remaining", rep)
	}
	if n := len(e.drain(t, "email")); n != 0 {
		t.Fatalf("dry run sent %d messages", n)
	}

	opts := dlq.RedriveOptions{ScanOptions: fast}
	opts.Filter.Types = []string{"OrderPaid"}
	opts.Limit = 3
	opts.BatchSize = 2
	rep, err = q.Redrive(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 3 || rep.Remaining != 12 {
		t.Errorf("limited redrive %+v, want 3 moved, 12 remaining", rep)
	}
	for _, d := range e.drain(t, "email") {
		if !strings.HasPrefix(d.ID, "b-") {
			t.Errorf("the type filter let %s through", d.ID)
		}
	}

	opts.Limit = 0
	rep, err = q.Redrive(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 2 || rep.Skipped != 10 || rep.Remaining != 10 {
		t.Errorf("filtered redrive %+v, want 2 moved, 10 skipped, 10 remaining", rep)
	}
}

func TestPurgeByFilter(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("a", "OrderPlaced", providers.ReasonPermanent, 4)...)
	e.deadLetter(t, "email", letter{id: "junk", raw: []byte("??"), reason: providers.ReasonMalformed})
	q := open(t, e, "email")
	ctx := context.Background()

	opts := dlq.PurgeOptions{ScanOptions: fast}
	opts.Filter.Reasons = []string{providers.ReasonMalformed}
	rep, err := q.Purge(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Purged != 1 || rep.Skipped != 4 || rep.Remaining != 4 {
		t.Errorf("purge %+v, want 1 purged, 4 skipped, 4 remaining", rep)
	}
	ls, err := q.List(ctx, fast)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ls); slices.Contains(got, "junk") || len(got) != 4 {
		t.Errorf("after purge the queue lists %v", got)
	}
	if n := len(e.drain(t, "email")); n != 0 {
		t.Errorf("purge sent %d messages", n)
	}
	rep, err = q.Purge(ctx, dlq.PurgeOptions{ScanOptions: fast})
	if err != nil || rep.Purged != 4 || rep.Remaining != 0 {
		t.Errorf("purge all: %+v, %v; want 4 purged", rep, err)
	}
}

func TestRedriveHonoursRate(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("a", "T", providers.ReasonPermanent, 30)...)
	q := open(t, e, "email")

	// 30 letters at 100/s: the first second's worth (a batch of at most
	// 100, capped to 30 here by BatchSize 10) goes at once, then 10 every
	// 100 ms: at least 200 ms in all.
	opts := dlq.RedriveOptions{ScanOptions: fast, Rate: 100}
	opts.BatchSize = 10
	start := time.Now()
	rep, err := q.Redrive(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if rep.Moved != 30 {
		t.Fatalf("moved %d, want 30", rep.Moved)
	}
	if took < 180*time.Millisecond {
		t.Errorf("30 letters at 100/s took %v, want at least 200 ms", took)
	}
}

func TestCancelledRedriveLosesNothingAndRunsEachMessageOnce(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("o", "OrderPlaced", providers.ReasonPermanent, 200)...)
	rec := newRecorder()
	c := e.run(t, "email", rec.handle)
	q := open(t, e, "email")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := dlq.RedriveOptions{ScanOptions: fast, Workers: 2}
	opts.BatchSize = 10
	opts.Progress = func(r dlq.Report) {
		if r.Moved >= 30 {
			cancel()
		}
	}
	first, err := q.Redrive(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled redrive returned %v, want context.Canceled", err)
	}
	if first.Moved < 30 || first.Moved >= 200 || first.Failed != 0 {
		t.Fatalf("cancelled redrive %+v, want 30 to 199 moved", first)
	}
	if n := e.count(t, "email"); n != 200-first.Moved {
		t.Fatalf("after moving %d the queue holds %d letters, want %d",
			first.Moved, n, 200-first.Moved)
	}

	opts.Progress = nil
	second, err := q.Redrive(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if first.Moved+second.Moved != 200 || second.Remaining != 0 {
		t.Errorf("second redrive %+v after %d moved, want the rest", second, first.Moved)
	}
	eventually(t, "email to handle all 200", func() bool { return len(rec.snapshot()) == 200 })
	for id, n := range rec.snapshot() {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
	if s := c.Stats(); s.Duplicates != 0 {
		t.Errorf("consumer saw %d duplicates, want none", s.Duplicates)
	}
}

// faulty wraps the mem:// provider's dead-letter queues.
type faulty struct {
	*memory.Provider
	wrap func(providers.DeadLetterQueue) providers.DeadLetterQueue
}

func (f faulty) OpenDeadLetters(ctx context.Context, topic, consumer string) (
	providers.DeadLetterQueue, error) {
	q, err := f.Provider.OpenDeadLetters(ctx, topic, consumer)
	if err != nil {
		return nil, err
	}
	return f.wrap(q), nil
}

// dlQueue is short for the interface the wrappers take and return.
type dlQueue = providers.DeadLetterQueue

// faultyQueue overrides some of a queue's methods.
type faultyQueue struct {
	providers.DeadLetterQueue
	redrive func(ctx context.Context, msgs []*providers.Message) error
	ack     func(ctx context.Context, d *providers.Delivery) error
	count   func(ctx context.Context) (int, error)
}

func (f *faultyQueue) Count(ctx context.Context) (int, error) {
	if f.count != nil {
		return f.count(ctx)
	}
	return f.DeadLetterQueue.Count(ctx)
}

func (f *faultyQueue) Redrive(ctx context.Context, msgs []*providers.Message) error {
	if f.redrive != nil {
		return f.redrive(ctx, msgs)
	}
	return f.DeadLetterQueue.Redrive(ctx, msgs)
}

func (f *faultyQueue) Ack(ctx context.Context, d *providers.Delivery) error {
	if f.ack != nil {
		return f.ack(ctx, d)
	}
	return f.DeadLetterQueue.Ack(ctx, d)
}

func TestInterruptedAfterSendDuplicatesNoEffect(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("o", "OrderPlaced", providers.ReasonPermanent, 20)...)
	rec := newRecorder()
	c := e.run(t, "email", rec.handle)

	// The first run "crashes" after sending: no letter is removed.
	broken := faulty{Provider: e.p, wrap: func(q dlQueue) dlQueue {
		return &faultyQueue{DeadLetterQueue: q, ack: func(context.Context, *providers.Delivery) error {
			return errors.New("connection reset")
		}}
	}}
	rep, err := dlq.Redrive(context.Background(), broken, topic, "email",
		dlq.RedriveOptions{ScanOptions: fast})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 0 || rep.Failed != 20 || rep.Remaining != 20 || len(rep.Failures) != 20 {
		t.Fatalf("report %+v, want 20 failed and still in the queue", rep)
	}
	eventually(t, "email to handle the 20 sent", func() bool { return len(rec.snapshot()) == 20 })

	rep, err = dlq.Redrive(context.Background(), e.p, topic, "email",
		dlq.RedriveOptions{ScanOptions: fast})
	if err != nil || rep.Moved != 20 || rep.Remaining != 0 {
		t.Fatalf("second redrive %+v, %v; want 20 moved", rep, err)
	}
	eventually(t, "the consumer to see the 20 again", func() bool {
		return c.Stats().Duplicates == 20
	})
	for id, n := range rec.snapshot() {
		if n != 1 {
			t.Errorf("%s handled %d times, want once", id, n)
		}
	}
}

func TestPartialAndTotalSendFailures(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("o", "T", providers.ReasonPermanent, 6)...)

	// The provider refuses the first message of every batch.
	partial := faulty{Provider: e.p, wrap: func(q dlQueue) dlQueue {
		return &faultyQueue{DeadLetterQueue: q,
			redrive: func(ctx context.Context, msgs []*providers.Message) error {
				for _, m := range msgs {
					for k := range m.Attributes {
						if strings.HasPrefix(k, "herald-dl") {
							t.Errorf("redrive sent %s with attribute %s", m.ID, k)
						}
					}
				}
				if err := q.Redrive(ctx, msgs[1:]); err != nil {
					return err
				}
				return &providers.BatchError{Failed: map[int]error{0: providers.ErrTooLarge}}
			}}
	}}
	opts := dlq.RedriveOptions{ScanOptions: fast, Workers: 1}
	opts.BatchSize = 3
	rep, err := dlq.Redrive(context.Background(), partial, topic, "email", opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 4 || rep.Failed != 2 || rep.Remaining != 2 {
		t.Errorf("partial failure %+v, want 4 moved, 2 failed and remaining", rep)
	}
	if n := len(e.drain(t, "email")); n != 4 {
		t.Errorf("email got %d messages, want 4", n)
	}

	// The target is gone: nothing is removed and the error says so.
	gone := faulty{Provider: e.p, wrap: func(q dlQueue) dlQueue {
		return &faultyQueue{DeadLetterQueue: q,
			redrive: func(context.Context, []*providers.Message) error {
				return errors.Join(errors.New("queue orders-email deleted"), providers.ErrNotFound)
			}}
	}}
	rep, err = dlq.Redrive(context.Background(), gone, topic, "email", opts)
	if !errors.Is(err, dlq.ErrAborted) || !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("redrive to a deleted target: %v, want ErrAborted and ErrNotFound", err)
	}
	if rep.Moved != 0 || rep.Remaining != 2 {
		t.Errorf("redrive to a deleted target %+v, want nothing moved, 2 remaining", rep)
	}
}

func TestOpenErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, err := dlq.Open(ctx, e.p, topic, "nobody")
	if !errors.Is(err, providers.ErrNotFound) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("missing consumer: %v, want ErrNotFound naming it", err)
	}
	_, err = dlq.Redrive(ctx, e.p, "no-topic", "email", dlq.RedriveOptions{})
	if !errors.Is(err, providers.ErrNotFound) {
		t.Errorf("missing topic: %v, want ErrNotFound", err)
	}
	_, err = dlq.Open(ctx, noDeadLetters{e.p}, topic, "email")
	if !errors.Is(err, providers.ErrInvalid) {
		t.Errorf("provider without dead letters: %v, want ErrInvalid", err)
	}
}

// noDeadLetters hides the provider's DeadLetterSource.
type noDeadLetters struct{ providers.Provider }

func TestEmptyQueueEndsAtOnce(t *testing.T) {
	e := newEnv(t)
	q := open(t, e, "email")
	start := time.Now()
	rep, err := q.Redrive(context.Background(), dlq.RedriveOptions{})
	if err != nil || rep.Moved != 0 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("redrive of an empty queue took %v; the count should end it at once", took)
	}
}

func TestScanEndsAfterTwoEmptyReceivesWhenTheCountIsUnknown(t *testing.T) {
	e := newEnv(t)
	e.deadLetter(t, "email", letters("a", "T", providers.ReasonPermanent, 3)...)
	e.deadLetter(t, "email", letters("b", "U", providers.ReasonPermanent, 3)...)
	blind := faulty{Provider: e.p, wrap: func(q dlQueue) dlQueue {
		return &faultyQueue{DeadLetterQueue: q, count: func(context.Context) (int, error) {
			return 0, providers.ErrUnavailable
		}}
	}}
	opts := dlq.RedriveOptions{ScanOptions: dlq.ScanOptions{ReceiveWait: 50 * time.Millisecond}}
	opts.Filter.Types = []string{"U"}
	start := time.Now()
	rep, err := dlq.Redrive(context.Background(), blind, topic, "email", opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Moved != 3 || rep.Skipped != 3 || rep.Remaining != -1 {
		t.Errorf("report %+v, want 3 moved, 3 skipped, remaining unknown", rep)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the scan took %v to end", took)
	}
	if n := e.count(t, "email"); n != 3 {
		t.Errorf("%d letters left, want the 3 skipped", n)
	}
}
