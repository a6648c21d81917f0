package servicebus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/seed06bc8277/herald/providers"
)

// Session figures (see "Ordering" in the package doc).
const (
	// maxSessions bounds the sessions one subscription holds at once; it
	// is also bounded by SubscriptionOptions.MaxInFlight.
	maxSessions = 4
	// sessionIdle is how long a session with nothing in flight and
	// nothing received stays open before it is closed, so that another
	// consumer process can take it; when all slots are taken, such a
	// session is closed at once.
	sessionIdle = 500 * time.Millisecond
	// sessionPoll is how long one ReceiveBatch waits on each open session.
	sessionPoll = 50 * time.Millisecond
	// acceptPoll is how long accepting another session waits while other
	// sessions are open.
	acceptPoll = 250 * time.Millisecond
	// renewEvery is how often session locks are checked; a lock is renewed
	// once less than half of its length is left.
	renewEvery = 100 * time.Millisecond
)

// requiresSessions reports whether err is the refusal of a plain
// receiver by an entity that requires sessions (amqp:not-allowed on
// attach).
func requiresSessions(err error) bool {
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Condition == condNotAllowed
}

// sessionRecv is one accepted session.
type sessionRecv struct {
	r        *azservicebus.SessionReceiver
	span     time.Duration // the lock's length when accepted
	inFlight int           // deliveries not yet settled; guarded by pool.mu
	active   time.Time     // last delivery or settlement; guarded by pool.mu
	closed   bool          // guarded by pool.mu
}

// sessionPool holds the sessions a session-required subscription reads.
type sessionPool struct {
	p           *Provider
	topic, name string
	path        string
	max         int

	mu       sync.Mutex
	open     []*sessionRecv
	closed   bool
	stop     chan struct{}
	wg       sync.WaitGroup
	receiveM sync.Mutex // one ReceiveBatch at a time
}

func newSessionPool(p *Provider, topic, name, path string, maxInFlight int) *sessionPool {
	sp := &sessionPool{p: p, topic: topic, name: name, path: path,
		max: min(max(maxInFlight, 1), maxSessions), stop: make(chan struct{})}
	sp.wg.Add(1)
	go sp.renewLoop()
	return sp
}

// receive returns up to n messages from the sessions held, accepting the
// next available session while fewer than max are open. It waits at
// most receiveWait for a first message.
func (sp *sessionPool) receive(ctx context.Context, n int) ([]*providers.Delivery, error) {
	sp.receiveM.Lock()
	defer sp.receiveM.Unlock()
	n = min(max(n, 1), maxCredits)
	deadline := time.Now().Add(receiveWait)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sp.mu.Lock()
		if sp.closed {
			sp.mu.Unlock()
			return nil, closedErr("receive from", sp.path)
		}
		open := append([]*sessionRecv(nil), sp.open...)
		sp.mu.Unlock()

		var out []*providers.Delivery
		for _, s := range open {
			if len(out) >= n {
				break
			}
			got, err := sp.receiveFrom(ctx, s, n-len(out))
			if err != nil {
				return out, err
			}
			out = append(out, got...)
		}
		if len(out) > 0 {
			return out, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		sp.mu.Lock()
		room := len(sp.open) < sp.max
		none := len(sp.open) == 0
		sp.mu.Unlock()
		if !room {
			continue // the open sessions' polls pace this loop
		}
		wait := min(left, acceptPoll)
		if none {
			wait = left
		}
		if err := sp.accept(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// receiveFrom polls one session briefly; a session that failed, or that
// stayed idle with nothing in flight, is closed.
func (sp *sessionPool) receiveFrom(ctx context.Context, s *sessionRecv,
	n int) ([]*providers.Delivery, error) {
	wctx, cancel := context.WithTimeout(ctx, sessionPoll)
	msgs, err := s.r.ReceiveMessages(wctx, n, nil)
	cancel()
	if ctx.Err() != nil && len(msgs) == 0 {
		return nil, ctx.Err()
	}
	now := time.Now()
	sp.mu.Lock()
	if len(msgs) > 0 {
		s.inFlight += len(msgs)
		s.active = now
	}
	// An idle session goes after sessionIdle, or at once when all slots
	// are taken, so that other keys get their turn.
	idle := len(msgs) == 0 && s.inFlight == 0 &&
		(now.Sub(s.active) >= sessionIdle || len(sp.open) >= sp.max)
	drop := (err != nil && wctx.Err() == nil && len(msgs) == 0) || idle
	if drop {
		sp.removeLocked(s)
	}
	sp.mu.Unlock()
	if drop {
		closeSession(s.r)
	}
	out := make([]*providers.Delivery, len(msgs))
	for i, m := range msgs {
		out[i] = toDelivery(m)
		out[i].Handle = &handle{msg: m, sess: s, pool: sp}
	}
	return out, nil
}

// accept locks the next available session, waiting at most wait. No
// session available is not an error.
func (sp *sessionPool) accept(ctx context.Context, wait time.Duration) error {
	actx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	r, err := sp.p.client.AcceptNextSessionForSubscription(actx, sp.topic, sp.name, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var sbErr *azservicebus.Error
		if actx.Err() != nil || errors.Is(err, context.DeadlineExceeded) ||
			(errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeTimeout) {
			return nil
		}
		return wrap("accept a session of", sp.path, err)
	}
	s := &sessionRecv{r: r, span: time.Until(r.LockedUntil()), active: time.Now()}
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		closeSession(r)
		return closedErr("receive from", sp.path)
	}
	sp.open = append(sp.open, s)
	sp.mu.Unlock()
	return nil
}

func (sp *sessionPool) removeLocked(s *sessionRecv) {
	s.closed = true
	for i, o := range sp.open {
		if o == s {
			sp.open = append(sp.open[:i], sp.open[i+1:]...)
			return
		}
	}
}

// settled counts one settlement of a delivery from s.
func (sp *sessionPool) settled(s *sessionRecv) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if s.inFlight > 0 {
		s.inFlight--
	}
	s.active = time.Now()
}

// renewLoop renews the lock of every open session once less than half
// of it is left, so that messages in flight keep their locks.
func (sp *sessionPool) renewLoop() {
	defer sp.wg.Done()
	t := time.NewTicker(renewEvery)
	defer t.Stop()
	for {
		select {
		case <-sp.stop:
			return
		case <-t.C:
		}
		sp.mu.Lock()
		var due []*sessionRecv
		for _, s := range sp.open {
			if time.Until(s.r.LockedUntil()) < s.span/2 {
				due = append(due, s)
			}
		}
		sp.mu.Unlock()
		for _, s := range due {
			ctx, cancel := context.WithTimeout(context.Background(), max(s.span/2, time.Second))
			_ = s.r.RenewSessionLock(ctx, nil) // a lost session fails its next receive
			cancel()
		}
	}
}

// renew renews s's lock now (Extend) and returns the new expiry.
func (sp *sessionPool) renew(ctx context.Context, s *sessionRecv) (time.Time, error) {
	if err := s.r.RenewSessionLock(ctx, nil); err != nil {
		return time.Time{}, err
	}
	return s.r.LockedUntil(), nil
}

func (sp *sessionPool) close() {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		return
	}
	sp.closed = true
	open := sp.open
	sp.open = nil
	sp.mu.Unlock()
	close(sp.stop)
	sp.wg.Wait()
	for _, s := range open {
		closeSession(s.r)
	}
}

func closeSession(r *azservicebus.SessionReceiver) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = r.Close(ctx)
}

func closedErr(op, path string) error {
	return fmt.Errorf("%w: servicebus: %s %s", providers.ErrClosed, op, path)
}
