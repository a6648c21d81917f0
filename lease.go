package herald

import (
	"log/slog"
	"time"
)

// keepLeases is step 4's other half: one goroutine that extends the
// provider lease of every delivery in flight before it runs out, so that a
// slow handler is not redelivered under it. It looks every Lease/4 (at
// most every second) and extends leases with less than half left.
func (l *loop) keepLeases(stop <-chan struct{}) {
	every := min(l.o.Lease/4, time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		for i := range l.slots {
			j := l.slots[i].Load()
			if j != nil {
				rc := j.run.Load()
				d := j.deadline.Load()
				if rc != nil && d != 0 && now.UnixNano() > d && j.deadline.CompareAndSwap(d, 0) {
					rc.cancel(ErrHandlerTimeout)
				}
			}
			if j == nil || j.state.Load() != stateOpen || j.d.LeaseUntil.IsZero() ||
				j.d.LeaseUntil.Sub(now) > l.o.Lease/2 {
				continue
			}
			if err := l.sub.Extend(l.settleCtx, j.d, l.o.Lease); err != nil && j.state.Load() == stateOpen {
				l.log.Warn("herald: lease extension failed", slog.String("id", msgID(j)),
					slog.Any("error", err))
			}
		}
	}
}

// abandon runs when the drain timeout is over: it cancels the handlers
// still running and gives their deliveries back at once. Their claims are
// kept until each handler returns, which then completes or releases it.
func (l *loop) abandon() {
	l.handlerCancel()
	for i := range l.slots {
		j := l.slots[i].Load()
		if j == nil || !j.state.CompareAndSwap(stateOpen, stateAbandoned) {
			continue
		}
		if err := l.sub.Nack(l.settleCtx, j.d, 0); err != nil {
			l.log.Warn("herald: give back at shutdown failed; the message returns after its lease",
				slog.String("id", msgID(j)), slog.Any("error", err))
		}
	}
}
