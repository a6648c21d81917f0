// Package dlq inspects, purges and redrives the dead letters of one
// consumer, on every provider that implements providers.DeadLetterSource.
//
// A dead letter is a message that a consumer gave up on, with the reason
// attached (providers.DeadLetter): the reason, the last error, the attempt
// on which it was dead-lettered, the consumer and the time. Open a
// consumer's dead-letter queue with Open, then:
//
//   - Count says about how many letters it holds;
//   - List and Peek read letters without removing them (Peek adds the
//     payload); a letter that no longer decodes is listed with its decode
//     error;
//   - Redrive sends letters back to the consumer that failed, and to no
//     one else, then removes them from the dead-letter queue;
//   - Purge removes letters for good.
//
// Every operation takes a Filter (by reason, type, ID and age) and a
// limit. The dead-letter queue is a queue, not a table: reading it leases
// letters. A scan leases batches, acts on the letters that match and holds
// the others leased until it ends, so that it sees each letter once, and
// then gives them back unchanged. It ends after two receives in a row come
// back empty (each waits up to ScanOptions.ReceiveWait, 5 s by default), or
// sooner when the queue's count says that only held letters are left. A
// letter held longer than its lease (30 s on mem:// and SQS) comes back and
// is held again; the scan knows it by its provider ID, so it counts once.
//
// Throughput: a scan receives one batch at a time while up to
// RedriveOptions.Workers batches are sent and removed at once (removals 16
// at a time). On SQS a receive returns at most 10 letters, so one round
// trip per 10 letters bounds a redrive there.
//
// Redrive keeps each message's ID, body, ordering key and attributes (less
// herald's dead-letter attributes), so the consumer's idempotency store
// still recognises a message it already handled; the provider resets the
// attempt count. A letter is removed from the dead-letter queue only after
// its message was sent, so a redrive that is cancelled, crashes or fails
// half-way loses nothing, and running it again sends the rest: a message
// that was sent but whose letter was not yet removed is sent twice, with
// the same ID, and the consumer runs its handler once.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald"
	"github.com/seed06bc8277/herald/providers"
)

// Queue is the dead-letter queue of one consumer of a topic. It is safe
// for concurrent use, but two scans that run at once each see only the
// letters the other does not hold.
type Queue struct {
	q        providers.DeadLetterQueue
	topic    string
	consumer string
}

// Open opens the dead-letter queue of the consumer of the topic. The error
// wraps providers.ErrInvalid when the provider has no dead-letter queues
// herald can read, and providers.ErrNotFound when the topic, the consumer
// or its dead-letter queue does not exist.
func Open(ctx context.Context, p providers.Provider, topic, consumer string) (*Queue, error) {
	if topic == "" || consumer == "" {
		return nil, fmt.Errorf("%w: dlq: open dead letters: topic and consumer are required",
			providers.ErrInvalid)
	}
	src, ok := p.(providers.DeadLetterSource)
	if !ok {
		return nil, fmt.Errorf("%w: dlq: open dead letters of %s/%s: provider %T cannot read "+
			"dead-letter queues", providers.ErrInvalid, topic, consumer, p)
	}
	q, err := src.OpenDeadLetters(ctx, topic, consumer)
	if err != nil {
		return nil, fmt.Errorf("dlq: open dead letters of %s/%s: %w", topic, consumer, err)
	}
	return &Queue{q: q, topic: topic, consumer: consumer}, nil
}

// OpenClient is Open on the client's provider.
func OpenClient(ctx context.Context, c *herald.Client, topic, consumer string) (*Queue, error) {
	return Open(ctx, c.Provider(), topic, consumer)
}

// Topic returns the topic the queue belongs to.
func (q *Queue) Topic() string { return q.topic }

// Consumer returns the consumer whose dead letters the queue holds.
func (q *Queue) Consumer() string { return q.consumer }

// Count returns about how many letters the queue holds, as the provider
// counts them (on some clouds the figure lags by up to a minute).
func (q *Queue) Count(ctx context.Context) (int, error) {
	n, err := q.q.Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("dlq: count dead letters of %s/%s: %w", q.topic, q.consumer, err)
	}
	return n, nil
}

// Close releases the queue. Letters a scan still holds are given back by
// the scan itself before it returns.
func (q *Queue) Close() error {
	return q.q.Close()
}

// Letter is one dead letter as List and Peek show it.
type Letter struct {
	// ID is herald's message ID: the envelope's, or the provider's
	// message ID field when the letter does not decode.
	ID string `json:"id"`
	// Type is the envelope's type; empty when the letter does not decode.
	Type string `json:"type,omitempty"`
	// Reason is why it was dead-lettered (providers.ReasonMalformed, ...);
	// empty when the letter carries no dead-letter attributes.
	Reason string `json:"reason"`
	// Error is the last error's text, as the consumer recorded it (at most
	// 1 KiB).
	Error string `json:"error,omitempty"`
	// Attempts is the attempt on which the message was dead-lettered.
	Attempts int `json:"attempts"`
	// Consumer is the consumer that gave up on it.
	Consumer string `json:"consumer"`
	// DeadLetteredAt is when it was dead-lettered; zero when unknown.
	DeadLetteredAt time.Time `json:"deadLetteredAt"`
	// Size is the payload's size in bytes: the envelope's data, or the
	// whole body when the letter does not decode.
	Size int `json:"size"`
	// ProviderID is the cloud's own ID of the letter.
	ProviderID string `json:"providerId,omitempty"`
	// DecodeError says why the letter is not a herald envelope; empty
	// when it decodes.
	DecodeError string `json:"decodeError,omitempty"`
	// Source, Subject, ContentType and OrderingKey are the envelope's.
	Source      string `json:"source,omitempty"`
	Subject     string `json:"subject,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	OrderingKey string `json:"orderingKey,omitempty"`
	// Time is when the fact happened, from the envelope.
	Time time.Time `json:"time,omitzero"`
	// Attributes are the application's attributes (herald's own removed).
	Attributes map[string]string `json:"attributes,omitempty"`
	// Data is the payload (the raw body when the letter does not decode).
	// Only Peek fills it.
	Data []byte `json:"data,omitempty"`
}

// letterOf describes a delivery from a dead-letter queue.
func letterOf(d *providers.Delivery) Letter {
	l := Letter{ID: d.ID, ProviderID: d.ProviderID, OrderingKey: d.OrderingKey}
	if dl, ok := providers.ParseDeadLetter(d.Attributes); ok {
		l.Reason, l.Error, l.Attempts = dl.Reason, dl.Error, dl.Attempts
		l.Consumer, l.DeadLetteredAt = dl.Consumer, dl.Time
	}
	m, err := herald.Decode(d)
	if err != nil {
		l.DecodeError = err.Error()
		l.Size = len(d.Body)
		return l
	}
	l.ID, l.Type, l.Source, l.Subject = m.ID, m.Type, m.Source, m.Subject
	l.ContentType, l.Time, l.Attributes = m.ContentType, m.Time, m.Attributes
	if m.OrderingKey != "" {
		l.OrderingKey = m.OrderingKey
	}
	l.Size = len(m.Data)
	return l
}

// withData returns the letter with its payload.
func withData(l Letter, d *providers.Delivery) Letter {
	if l.DecodeError != "" {
		l.Data = d.Body
		return l
	}
	if m, err := herald.Decode(d); err == nil {
		l.Data = m.Data
	}
	return l
}

// Report says what a Redrive or Purge did.
type Report struct {
	// Moved counts letters whose message was sent back to the consumer
	// and which were removed from the dead-letter queue (Redrive); in a
	// dry run, the letters that would have been.
	Moved int `json:"moved"`
	// Purged counts letters removed for good (Purge); in a dry run, the
	// letters that would have been.
	Purged int `json:"purged"`
	// Skipped counts letters seen that the filter did not match; they
	// were given back unchanged.
	Skipped int `json:"skipped"`
	// Failed counts letters that matched but stay in the dead-letter
	// queue because sending or removing them failed. A failed letter whose
	// message was sent is sent again by the next redrive, with its ID.
	Failed int `json:"failed"`
	// Remaining is the queue's count after the run (about), or -1 when
	// the provider could not say.
	Remaining int `json:"remaining"`
	// DryRun is true when nothing was sent or removed.
	DryRun bool `json:"dryRun,omitempty"`
	// Elapsed is how long the run took.
	Elapsed time.Duration `json:"elapsedNs"`
	// Failures names up to 100 failed letters and why.
	Failures []Failure `json:"failures,omitempty"`
}

// Failure is one letter that failed, and why.
type Failure struct {
	// ID is the letter's message ID.
	ID string `json:"id"`
	// Error says what failed: the send, or the removal after the send.
	Error string `json:"error"`
}

// maxFailures bounds Report.Failures.
const maxFailures = 100

// ErrAborted is wrapped by the error of a Redrive or Purge that stopped
// because the provider refused a whole batch (a deleted target, a closed
// provider): what was done before is in the Report.
var ErrAborted = errors.New("dlq: aborted")
