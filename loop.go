package herald

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// What a worker does with a job, decided when the batch is claimed.
type action uint8

const (
	actRun        action = iota // claim acquired: run the handler
	actDuplicate                // already handled: ack without running
	actDeadLetter               // malformed or conflicting: dead-letter at once
	actGiveBack                 // held elsewhere or store down: give back for later
)

// Job states: a job is settled with the provider once, by its worker or,
// past the drain timeout, by the drain.
const (
	stateOpen int32 = iota
	stateSettled
	stateAbandoned
)

// job is one delivery on its way through the loop. It holds a slot from
// receipt until it is settled, so Concurrency bounds what is in flight.
type job struct {
	d      *providers.Delivery
	m      *Message
	key    string // idempotency key: "<consumer>/<message ID>"
	fp     uint64
	token  idempotency.Token
	slot   int
	act    action
	reason string        // actDeadLetter
	cause  error         // actDeadLetter: why
	delay  time.Duration // actGiveBack
	twins  []*job        // later deliveries of the same ID in the same batch
	twin   bool          // settled by the first delivery of its ID
	state  atomic.Int32
	msg    Message // the decoded envelope, m points here: one allocation less

	// While its handler runs: the run's context, and when the run times
	// out in Unix nanoseconds (0 when no handler runs). The lease keeper
	// reads both.
	w        *worker
	run      atomic.Pointer[runCtx]
	deadline atomic.Int64
}

// worker is one of the Concurrency goroutines that run handlers. Its
// context serves every handler it runs, so that a run costs no context
// allocation; the lease keeper cancels it when a run outlives
// HandlerTimeout, and the worker then starts a fresh one.
type worker struct {
	rc *runCtx // only the worker's goroutine touches it
}

type runCtx struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// ErrHandlerTimeout is the cause (context.Cause) of a handler context that
// ended because the run outlived ConsumerOptions.HandlerTimeout.
var ErrHandlerTimeout = errors.New("herald: handler timeout")

func (l *loop) newRunCtx() *runCtx {
	rc := &runCtx{}
	rc.ctx, rc.cancel = context.WithCancelCause(l.handlerCtx)
	return rc
}

// loop is one Run of a Consumer.
type loop struct {
	c    *Consumer
	sub  providers.Subscription
	o    ConsumerOptions
	log  *slog.Logger
	name string

	free  chan int              // slot numbers not in use
	slots []atomic.Pointer[job] // the job holding each slot, for the lease keeper
	work  chan *job             // jobs for the workers
	order orderer               // step 7: one job per ordering key at a time

	// settleCtx outlives Run's context, so that shutdown can still ack and
	// give back; handlerCtx is cancelled when the drain timeout runs out.
	settleCtx     context.Context
	settleCancel  context.CancelFunc
	handlerCtx    context.Context
	handlerCancel context.CancelFunc
	draining      atomic.Bool
	drainStart    chan struct{} // closed when shutdown begins

	// accept's buffers, reused from batch to batch.
	jobsBuf    []*job
	reqsBuf    []idempotency.Request
	claimedBuf []*job

	gbMu      sync.Mutex
	givebacks map[string]int // deliveries of a key given back unrun, not attempts
	gbLen     atomic.Int64   // len(givebacks), read without the lock on the hot path
}

func newLoop(c *Consumer, sub providers.Subscription) *loop {
	o := c.opts
	l := &loop{
		c: c, sub: sub, o: o, name: c.name,
		log:        o.Logger.With(slog.String("topic", c.topic), slog.String("consumer", c.name)),
		free:       make(chan int, o.Concurrency),
		slots:      make([]atomic.Pointer[job], o.Concurrency),
		work:       make(chan *job, o.Concurrency),
		givebacks:  map[string]int{},
		drainStart: make(chan struct{}),
	}
	for i := range o.Concurrency {
		l.free <- i
	}
	l.order.init()
	l.settleCtx, l.settleCancel = context.WithCancel(context.Background())
	l.handlerCtx, l.handlerCancel = context.WithCancel(context.Background())
	return l
}

// run is the loop: receive until ctx ends or the subscription fails for
// good, then drain.
func (l *loop) run(ctx context.Context) error {
	defer l.settleCancel()
	defer l.handlerCancel()

	var workers sync.WaitGroup
	for range l.o.Concurrency {
		workers.Go(func() {
			w := &worker{rc: l.newRunCtx()}
			defer func() { w.rc.cancel(nil) }()
			for j := range l.work {
				j.w = w
				l.process(j)
			}
		})
	}
	keeperDone := make(chan struct{})
	stopKeeper := make(chan struct{})
	go func() {
		defer close(keeperDone)
		l.keepLeases(stopKeeper)
	}()

	err := l.receive(ctx)

	// Step 8: stop receiving, let handlers finish within the drain
	// timeout, give back the rest.
	l.draining.Store(true)
	close(l.drainStart)
	close(l.work)
	finished := make(chan struct{})
	go func() {
		workers.Wait()
		close(finished)
	}()
	timer := time.NewTimer(l.o.DrainTimeout)
	defer timer.Stop()
	select {
	case <-finished:
	case <-timer.C:
		l.abandon()
		// Handlers whose context ended get a moment to return, so that
		// their keys are completed or released; one that ignores its
		// context is left behind.
		select {
		case <-finished:
		case <-time.After(time.Second):
			l.log.Warn("herald: handlers still running after the drain timeout")
		}
	}
	close(stopKeeper)
	<-keeperDone
	return err
}

// receive is steps 1 to 3: take free slots, receive that many deliveries,
// decode and claim them, and hand them to the workers.
func (l *loop) receive(ctx context.Context) error {
	failures := 0
	taken := make([]int, 0, l.o.BatchSize)
	for {
		// Wait for one free slot, then take up to a batch of them.
		select {
		case s := <-l.free:
			taken = append(taken[:0], s)
		case <-ctx.Done():
			return nil
		}
	more:
		for len(taken) < l.o.BatchSize {
			select {
			case s := <-l.free:
				taken = append(taken, s)
			default:
				break more
			}
		}

		ds, err := l.sub.ReceiveBatch(ctx, len(taken))
		if len(ds) > len(taken) {
			ds = ds[:len(taken)] // a driver that overfills: never exceed the slots
		}
		for _, s := range taken[len(ds):] {
			l.free <- s
		}
		var storeErr error
		if len(ds) > 0 {
			storeErr = l.accept(ds, taken[:len(ds)])
		}
		if err == nil && storeErr == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) || errors.Is(err, ErrInvalid) {
			return fmt.Errorf("herald: consumer %q of %q: receive: %w", l.name, l.c.topic, err)
		}
		// A passing failure of the provider (network, throttling) or of
		// the store: wait before receiving more, rather than spin.
		failures++
		delay := l.o.Backoff.Delay(failures)
		if err == nil {
			err = storeErr
		}
		l.log.Warn("herald: receive paused", slog.Any("error", err), slog.Duration("retry_in", delay))
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

// accept decodes a batch, claims its keys in one round trip and dispatches
// each delivery with what to do with it. It returns the store's error when
// the claim failed (the batch is then given back unrun).
func (l *loop) accept(ds []*providers.Delivery, slots []int) error {
	// The batch's slices are the loop's, reused: only the receive
	// goroutine calls accept.
	jobs := l.jobsBuf[:0]
	// The first job of each ID: found by a scan in small batches, through
	// a map in larger ones.
	var first map[string]*job
	if len(ds) > smallBatch {
		first = make(map[string]*job, len(ds))
	}
	reqs := l.reqsBuf[:0]
	claimed := l.claimedBuf[:0]
	defer func() {
		// Keep the capacity, not the jobs.
		clear(jobs)
		clear(reqs)
		clear(claimed)
		l.jobsBuf, l.reqsBuf, l.claimedBuf = jobs[:0], reqs[:0], claimed[:0]
	}()
	var claimErr error
	for i, d := range ds {
		l.c.stats.received.Add(1)
		j := &job{d: d, slot: slots[i]}
		jobs = append(jobs, j)
		l.slots[j.slot].Store(j)

		// Step 2: what does not decode is dead-lettered at once.
		if err := decodeInto(&j.msg, d); err != nil {
			l.c.stats.malformed.Add(1)
			j.act, j.reason, j.cause = actDeadLetter, providers.ReasonMalformed, err
			continue
		}
		m := &j.msg
		j.m = m
		j.key = l.name + "/" + m.ID
		j.fp = fingerprint(m)
		if f := firstOf(first, claimed, m.ID); f != nil {
			// The same ID twice in one batch: it waits for the first.
			f.twins = append(f.twins, j)
			j.twin = true
			continue
		}
		if first != nil {
			first[m.ID] = j
		}
		reqs = append(reqs, idempotency.Request{Key: j.key, Fingerprint: j.fp, Lease: l.o.HandlerTimeout})
		claimed = append(claimed, j)
	}

	// Step 3: claim every key of the batch at once.
	if len(reqs) > 0 {
		results, err := l.o.Store.ClaimBatch(l.settleCtx, reqs)
		if err == nil && len(results) != len(reqs) {
			err = fmt.Errorf("store answered %d claims for %d keys", len(results), len(reqs))
		}
		now := time.Now()
		for i, j := range claimed {
			if err != nil {
				// The store is down: neither run nor ack; try later.
				j.act, j.delay = actGiveBack, l.o.Backoff.Delay(1)
				continue
			}
			l.classify(j, results[i], now)
		}
		if err != nil {
			claimErr = fmt.Errorf("idempotency store: %w", err)
		}
	}

	for _, j := range jobs {
		if !j.twin {
			l.dispatch(j)
		}
	}
	return claimErr
}

// smallBatch is the largest batch accept checks for repeated IDs by a scan
// rather than a map.
const smallBatch = 8

// firstOf returns the job of the batch so far that has the message ID id,
// from first when the batch is large, or by scanning claimed.
func firstOf(first map[string]*job, claimed []*job, id string) *job {
	if first != nil {
		return first[id]
	}
	for _, j := range claimed {
		if j.m.ID == id {
			return j
		}
	}
	return nil
}

// classify turns a claim's result into the job's action.
func (l *loop) classify(j *job, r idempotency.Result, now time.Time) {
	switch r.Status {
	case idempotency.Acquired:
		j.act, j.token = actRun, r.Token
	case idempotency.Completed:
		j.act = actDuplicate
	case idempotency.Conflict:
		l.c.stats.conflicts.Add(1)
		j.act, j.reason = actDeadLetter, providers.ReasonConflict
		j.cause = fmt.Errorf("message ID %q was already used for a different payload", j.m.ID)
	default: // InProgress: another worker runs it; come back after its lease.
		j.act = actGiveBack
		j.delay = min(max(r.Until.Sub(now), 100*time.Millisecond), l.o.Backoff.Max)
	}
}

// dispatch hands a job to the workers, through the ordering queue when it
// runs a handler for an ordering key.
func (l *loop) dispatch(j *job) {
	if j.act == actRun && j.m.OrderingKey != "" && !l.order.admit(j) {
		return // queued behind the key's running job
	}
	l.work <- j
}

// process settles one job, then any job of the same ordering key that
// queued behind it.
func (l *loop) process(j *job) {
	for j != nil {
		key := ""
		if j.act == actRun && j.m.OrderingKey != "" {
			key = j.m.OrderingKey
		}
		failed := l.settle(j)
		if key == "" {
			return
		}
		if failed || l.draining.Load() {
			// Order holds only if the rest wait for the failed one's
			// retry: give them back unrun.
			for _, next := range l.order.drop(key) {
				l.returnUnrun(next)
			}
			return
		}
		next := l.order.next(key)
		if next != nil {
			next.w = j.w
		}
		j = next
	}
}

// settle carries out a job's action, settles its twins alike and frees
// their slots. It reports whether a handler ran and failed.
func (l *loop) settle(j *job) (failed bool) {
	defer l.release(j)
	done := true // whether the message needs no further delivery
	switch j.act {
	case actDuplicate:
		l.c.stats.duplicates.Add(1)
		l.ack(j)
	case actDeadLetter:
		l.deadLetter(j, j.reason, j.cause, l.attempt(j))
	case actGiveBack:
		l.giveBack(j, j.delay)
		done = false
	default:
		if l.draining.Load() {
			l.releaseClaim(j)
			l.giveBack(j, 0)
			done = false
		} else {
			failed = !l.runHandler(j)
			done = !failed
		}
	}
	for _, t := range j.twins {
		switch {
		case t.fp != j.fp:
			l.c.stats.conflicts.Add(1)
			l.deadLetter(t, providers.ReasonConflict, fmt.Errorf(
				"message ID %q was delivered with two different payloads", t.m.ID), l.attempt(t))
		case done:
			l.c.stats.duplicates.Add(1)
			l.ack(t)
		default:
			l.giveBack(t, j.delay)
		}
	}
	return failed
}

// returnUnrun gives back a claimed job that never ran, with its twins.
func (l *loop) returnUnrun(j *job) {
	l.releaseClaim(j)
	j.act, j.delay = actGiveBack, 0
	l.settle(j)
}

// release frees a job's slot (and its twins', which it settled too).
func (l *loop) release(j *job) {
	for _, t := range j.twins {
		l.slots[t.slot].Store(nil)
		l.free <- t.slot
	}
	l.slots[j.slot].Store(nil)
	l.free <- j.slot
}
