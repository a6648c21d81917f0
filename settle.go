package herald

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// runHandler is steps 4 to 6 for one claimed message: run the handler,
// then complete-then-ack, or release and retry, or dead-letter. It reports
// whether the handler succeeded.
func (l *loop) runHandler(j *job) bool {
	j.m.Attempt = l.attempt(j)
	err := l.call(j)

	// A message with an ordering key is retried in place, holding its
	// lease: giving it back would let the messages queued behind it here
	// overtake it on a provider that does not keep a key's order on
	// redelivery.
	for err != nil && j.m.OrderingKey != "" && !IsPermanent(err) && j.m.Attempt < l.o.MaxAttempts {
		l.c.stats.failed.Add(1)
		if !l.pause(l.o.Backoff.Delay(j.m.Attempt)) || j.state.Load() != stateOpen {
			// Shutting down: give it back unrun, as after any failure.
			l.c.stats.failed.Add(-1)
			break
		}
		l.c.stats.retried.Add(1)
		j.m.Attempt++
		err = l.call(j)
	}

	// The drain may have given the delivery back while the handler ran;
	// then only the claim is settled, so that a redelivery is skipped
	// (success) or runs again (failure).
	owned := j.state.CompareAndSwap(stateOpen, stateSettled)

	if err == nil {
		// Step 5: record completion first; only then ack.
		l.complete(j)
		l.c.stats.handled.Add(1)
		if owned {
			l.ackOwned(j)
		}
		return true
	}

	// Step 6: a failure.
	l.c.stats.failed.Add(1)
	if !owned {
		l.releaseClaim(j)
		return false
	}
	if IsPermanent(err) {
		l.deadLetterOwned(j, providers.ReasonPermanent, err, j.m.Attempt)
		l.releaseClaim(j)
		return false
	}
	if j.m.Attempt >= l.o.MaxAttempts {
		l.deadLetterOwned(j, providers.ReasonMaxAttempts, err, j.m.Attempt)
		l.releaseClaim(j)
		return false
	}
	j.delay = l.o.Backoff.Delay(j.m.Attempt)
	if l.draining.Load() {
		j.delay = 0
	}
	l.releaseClaim(j)
	l.c.stats.retried.Add(1)
	if nerr := l.sub.Nack(l.settleCtx, j.d, j.delay); nerr != nil {
		l.log.Warn("herald: give back failed; the message returns after its lease",
			slog.String("id", j.m.ID), slog.Any("error", nerr))
	}
	l.forget(j)
	return false
}

// pause waits d, or less if shutdown begins; it reports whether it waited
// the whole of d.
func (l *loop) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.drainStart:
		return false
	}
}

// call runs the handler, turning a panic into an error.
func (l *loop) call(j *job) (err error) {
	w := j.w
	rc := w.rc
	j.run.Store(rc)
	j.deadline.Store(time.Now().Add(l.o.HandlerTimeout).UnixNano())
	defer func() {
		// A zero deadline here means the keeper took the timeout and
		// cancels (or cancelled) rc: the next run needs a fresh context.
		if j.deadline.Swap(0) == 0 || rc.ctx.Err() != nil {
			w.rc = l.newRunCtx()
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
			l.log.Error("herald: handler panicked", slog.String("id", j.m.ID),
				slog.Int("attempt", j.m.Attempt), slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
		}
	}()
	return l.c.handler(rc.ctx, j.m)
}

// complete marks the key handled. A store that fails is retried a few
// times; past that the message is acked all the same, since its effects
// are done and a redelivery would run them again.
func (l *loop) complete(j *job) {
	delay := 50 * time.Millisecond
	for try := 1; ; try++ {
		err := l.o.Store.Complete(l.settleCtx, j.key, j.token, l.o.Retention)
		switch {
		case err == nil:
			return
		case errors.Is(err, idempotency.ErrStaleToken):
			l.log.Warn("herald: claim expired before the handler finished; raise HandlerTimeout",
				slog.String("id", j.m.ID), slog.Duration("handler_timeout", l.o.HandlerTimeout))
			return
		case try == 4 || l.settleCtx.Err() != nil:
			l.log.Error("herald: could not record a handled message; a later duplicate may run again",
				slog.String("id", j.m.ID), slog.Any("error", err))
			return
		}
		sleep(l.settleCtx, delay)
		delay *= 4
	}
}

// releaseClaim gives up the key so that a redelivery can claim it.
func (l *loop) releaseClaim(j *job) {
	if j.token == 0 {
		return
	}
	if err := l.o.Store.Release(l.settleCtx, j.key, j.token); err != nil &&
		!errors.Is(err, idempotency.ErrStaleToken) {
		// The claim then ends with its lease (HandlerTimeout).
		l.log.Warn("herald: could not release a claim", slog.String("id", j.m.ID), slog.Any("error", err))
	}
}

// ack acks a job that no handler ran for.
func (l *loop) ack(j *job) {
	if j.state.CompareAndSwap(stateOpen, stateSettled) {
		l.ackOwned(j)
	}
}

func (l *loop) ackOwned(j *job) {
	if err := l.sub.Ack(l.settleCtx, j.d); err != nil {
		l.log.Warn("herald: ack failed; the message will come back and be skipped as handled",
			slog.String("id", msgID(j)), slog.Any("error", err))
	}
	l.forget(j)
}

// deadLetter dead-letters a job that no handler ran for.
func (l *loop) deadLetter(j *job, reason string, cause error, attempt int) {
	if j.state.CompareAndSwap(stateOpen, stateSettled) {
		l.deadLetterOwned(j, reason, cause, attempt)
	}
}

func (l *loop) deadLetterOwned(j *job, reason string, cause error, attempt int) {
	dl := providers.DeadLetter{
		Reason:   reason,
		Error:    cause.Error(),
		Attempts: attempt,
		Consumer: l.name,
		Time:     time.Now(),
	}
	if err := l.sub.DeadLetter(l.settleCtx, j.d, dl); err != nil {
		// Left where it is, it comes back and is dead-lettered again.
		l.log.Error("herald: dead-lettering failed", slog.String("id", msgID(j)),
			slog.String("reason", reason), slog.Any("error", err))
		_ = l.sub.Nack(l.settleCtx, j.d, l.o.Backoff.Delay(attempt))
		return
	}
	l.c.stats.deadLettered.Add(1)
	l.log.Warn("herald: dead-lettered", slog.String("id", msgID(j)), slog.String("reason", reason),
		slog.Int("attempt", attempt), slog.String("error", dl.Error))
	l.forget(j)
}

// giveBack returns a delivery unrun. The provider counts it as a
// delivery, so the loop counts it too and takes it off the attempts.
func (l *loop) giveBack(j *job, delay time.Duration) {
	if !j.state.CompareAndSwap(stateOpen, stateSettled) {
		return
	}
	if j.key != "" {
		l.gbMu.Lock()
		if len(l.givebacks) > 100_000 {
			clear(l.givebacks) // bounded: forgetting only costs attempts
		}
		l.givebacks[j.key]++
		l.gbLen.Store(int64(len(l.givebacks)))
		l.gbMu.Unlock()
	}
	if err := l.sub.Nack(l.settleCtx, j.d, delay); err != nil {
		l.log.Warn("herald: give back failed; the message returns after its lease",
			slog.String("id", msgID(j)), slog.Any("error", err))
	}
}

// attempt is the provider's delivery count less the deliveries this
// consumer gave back without running the handler.
func (l *loop) attempt(j *job) int {
	n := j.d.Attempt
	if n < 1 {
		n = 1
	}
	if j.key == "" || l.gbLen.Load() == 0 {
		return n
	}
	l.gbMu.Lock()
	gb := l.givebacks[j.key]
	l.gbMu.Unlock()
	return max(n-gb, 1)
}

// forget drops the give-back count of a message that is settled for good.
func (l *loop) forget(j *job) {
	if j.key == "" || l.gbLen.Load() == 0 {
		return
	}
	l.gbMu.Lock()
	delete(l.givebacks, j.key)
	l.gbLen.Store(int64(len(l.givebacks)))
	l.gbMu.Unlock()
}

func msgID(j *job) string {
	if j.m != nil {
		return j.m.ID
	}
	return j.d.ID
}

// sleep waits d or until ctx ends, reporting whether it waited it out.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
