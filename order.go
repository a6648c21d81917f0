package herald

import "sync"

// orderer is step 7: it lets one job per ordering key run at a time and
// queues the others in the order they were received.
type orderer struct {
	mu     sync.Mutex
	queues map[string][]*job // key -> jobs waiting behind the running one
}

func (o *orderer) init() { o.queues = map[string][]*job{} }

// admit reports whether j may run now; if not, it is queued behind the
// key's running job.
func (o *orderer) admit(j *job) bool {
	k := j.m.OrderingKey
	o.mu.Lock()
	defer o.mu.Unlock()
	if q, busy := o.queues[k]; busy {
		o.queues[k] = append(q, j)
		return false
	}
	o.queues[k] = nil
	return true
}

// next returns the job to run after the key's running job, or nil when
// none waits (and the key is free again).
func (o *orderer) next(k string) *job {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queues[k]
	if len(q) == 0 {
		delete(o.queues, k)
		return nil
	}
	o.queues[k] = q[1:]
	return q[0]
}

// drop frees the key and returns the jobs that waited behind it.
func (o *orderer) drop(k string) []*job {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queues[k]
	delete(o.queues, k)
	return q
}
