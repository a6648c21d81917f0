package providers

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// The reasons herald gives for dead-lettering a message.
const (
	// ReasonMalformed: the message could not be decoded as an envelope.
	ReasonMalformed = "malformed"
	// ReasonMaxAttempts: the handler failed on the last allowed attempt.
	ReasonMaxAttempts = "max-attempts"
	// ReasonPermanent: the handler returned a permanent error.
	ReasonPermanent = "permanent"
	// ReasonConflict: the message's ID was seen before with another
	// payload.
	ReasonConflict = "conflict"
)

// The attribute names under which a dead letter carries why it is one.
// Every driver writes them (or the packed form below), so that the dlq
// package reads dead letters alike on every provider.
const (
	AttrDeadLetterReason   = "herald-dl-reason"
	AttrDeadLetterError    = "herald-dl-error"
	AttrDeadLetterAttempts = "herald-dl-attempts"
	AttrDeadLetterConsumer = "herald-dl-consumer"
	AttrDeadLetterTime     = "herald-dl-time"
	// AttrDeadLetterPacked holds all of the above as one JSON object, for
	// providers short of attribute slots (SNS and SQS allow 10).
	AttrDeadLetterPacked = "herald-dl"
	// AttrTarget names the one consumer a redriven message is for.
	// Subscriptions that herald provisions on a shared topic filter on it:
	// a message with the attribute reaches only the named consumer.
	AttrTarget = "herald-target"
)

// maxErrorText bounds the error text a dead letter carries, so that a
// huge error cannot push a message over the provider's size limit.
const maxErrorText = 1024

// DeadLetter says why a message is dead-lettered.
type DeadLetter struct {
	// Reason is one of the Reason constants.
	Reason string `json:"reason"`
	// Error is the last error's text, cut to 1 KiB (1,024 bytes).
	Error string `json:"error,omitempty"`
	// Attempts is the attempt on which the message was dead-lettered.
	Attempts int `json:"attempts"`
	// Consumer is the consumer that gave up on it.
	Consumer string `json:"consumer"`
	// Time is when it was dead-lettered.
	Time time.Time `json:"time"`
}

// Attributes returns the dead letter's attributes, one per field.
func (dl DeadLetter) Attributes() map[string]string {
	return map[string]string{
		AttrDeadLetterReason:   dl.Reason,
		AttrDeadLetterError:    truncate(dl.Error),
		AttrDeadLetterAttempts: strconv.Itoa(dl.Attempts),
		AttrDeadLetterConsumer: dl.Consumer,
		AttrDeadLetterTime:     dl.Time.UTC().Format(time.RFC3339Nano),
	}
}

// Packed returns the dead letter as the one attribute AttrDeadLetterPacked.
func (dl DeadLetter) Packed() (name, value string) {
	dl.Error = truncate(dl.Error)
	dl.Time = dl.Time.UTC()
	b, _ := json.Marshal(dl) // a struct of strings, an int and a time cannot fail
	return AttrDeadLetterPacked, string(b)
}

// WithDeadLetter returns a copy of attrs with the dead letter's attributes
// added, packed into one attribute when maxAttrs (0: no limit) would be
// exceeded otherwise.
func WithDeadLetter(attrs map[string]string, dl DeadLetter, maxAttrs int) map[string]string {
	out := make(map[string]string, len(attrs)+5)
	for k, v := range attrs {
		out[k] = v
	}
	if maxAttrs > 0 && len(out)+5 > maxAttrs {
		k, v := dl.Packed()
		out[k] = v
		return out
	}
	for k, v := range dl.Attributes() {
		out[k] = v
	}
	return out
}

// ParseDeadLetter reads a dead letter's reason from its attributes, in
// either form. ok is false when the attributes carry none.
func ParseDeadLetter(attrs map[string]string) (dl DeadLetter, ok bool) {
	if v, has := attrs[AttrDeadLetterPacked]; has {
		if json.Unmarshal([]byte(v), &dl) == nil {
			return dl, true
		}
	}
	reason, has := attrs[AttrDeadLetterReason]
	if !has {
		return DeadLetter{}, false
	}
	dl.Reason = reason
	dl.Error = attrs[AttrDeadLetterError]
	dl.Attempts, _ = strconv.Atoi(attrs[AttrDeadLetterAttempts])
	dl.Consumer = attrs[AttrDeadLetterConsumer]
	dl.Time, _ = time.Parse(time.RFC3339Nano, attrs[AttrDeadLetterTime])
	return dl, true
}

// StripDeadLetter returns a copy of attrs without herald's dead-letter and
// target attributes: what a redriven message carries.
func StripDeadLetter(attrs map[string]string) map[string]string {
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		if strings.HasPrefix(k, "herald-dl") || k == AttrTarget {
			continue
		}
		out[k] = v
	}
	return out
}

// truncate cuts s to at most maxErrorText bytes, the mark included, on a
// rune boundary so that the attribute stays valid UTF-8.
func truncate(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	const mark = "…"
	cut := maxErrorText - len(mark)
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + mark
}

// DeadLetterSource is implemented by providers whose dead-letter queues
// herald can read and redrive (package dlq).
type DeadLetterSource interface {
	// OpenDeadLetters opens the dead-letter queue of one consumer. It
	// returns an error wrapping ErrNotFound when the consumer or its
	// dead-letter queue does not exist.
	OpenDeadLetters(ctx context.Context, topic, consumer string) (DeadLetterQueue, error)
}

// DeadLetterQueue is one consumer's dead-letter queue.
type DeadLetterQueue interface {
	// ReceiveBatch leases up to max dead letters, as Subscription does.
	// Their attributes include the dead-letter attributes.
	ReceiveBatch(ctx context.Context, max int) ([]*Delivery, error)
	// Ack removes a dead letter for good.
	Ack(ctx context.Context, d *Delivery) error
	// Release gives a leased dead letter back at once, unchanged.
	Release(ctx context.Context, d *Delivery) error
	// Redrive sends messages to the failed consumer only (its own queue,
	// or the topic with AttrTarget set), as new messages whose attempt
	// count starts again. It does not remove anything from the
	// dead-letter queue: the caller acks each letter after its message
	// was sent. A partial failure is a *BatchError.
	Redrive(ctx context.Context, msgs []*Message) error
	// Count returns about how many letters the queue holds.
	Count(ctx context.Context) (int, error)
	// Close releases the queue.
	Close() error
}
