package providers

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The sentinel errors drivers wrap, so that callers can test with
// errors.Is whatever the provider. The root package re-exports them.
var (
	// ErrNotFound: a topic, consumer, queue or subscription does not exist.
	ErrNotFound = errors.New("herald: not found")
	// ErrInvalid: the input breaks a rule of herald or of the provider.
	ErrInvalid = errors.New("herald: invalid")
	// ErrTooLarge: a message is larger than the provider accepts.
	ErrTooLarge = errors.New("herald: message too large")
	// ErrLeaseLost: a settlement came after the delivery's lease ended.
	ErrLeaseLost = errors.New("herald: lease lost")
	// ErrClosed: the publisher, consumer or provider is closed.
	ErrClosed = errors.New("herald: closed")
	// ErrUnavailable: the provider could not be reached or refused the
	// call for load (throttling); trying again later may succeed.
	ErrUnavailable = errors.New("herald: provider unavailable")
)

// BatchError reports a batch of which only some messages failed. The
// messages not named in Failed were sent.
type BatchError struct {
	// Failed maps the index of each failed message in the batch to why.
	Failed map[int]error
}

// Error lists how many failed and the first few reasons.
func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "herald: %d message(s) of the batch failed", len(e.Failed))
	for i, idx := range slices.Sorted(maps.Keys(e.Failed)) {
		if i == 3 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; #%d: %v", idx, e.Failed[idx])
	}
	return b.String()
}

// Unwrap returns the distinct causes, so that errors.Is(err, ErrTooLarge)
// holds when any message was too large.
func (e *BatchError) Unwrap() []error {
	out := make([]error, 0, len(e.Failed))
	for _, err := range e.Failed {
		out = append(out, err)
	}
	return out
}
