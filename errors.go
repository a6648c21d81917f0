package herald

import (
	"errors"

	"github.com/seed06bc8277/herald/providers"
)

// Sentinel errors. Every error herald returns wraps at most one of these,
// with the operation and the resource named, so test with errors.Is.
var (
	// ErrNotFound: a topic, consumer, queue or subscription does not exist.
	ErrNotFound = providers.ErrNotFound
	// ErrInvalid: bad input (an empty type, a bad attribute name, an
	// unknown URL scheme, a nil handler, a consumer started twice...).
	ErrInvalid = providers.ErrInvalid
	// ErrTooLarge: a message is larger than the provider accepts.
	ErrTooLarge = providers.ErrTooLarge
	// ErrLeaseLost: a delivery was settled after its lease ended.
	ErrLeaseLost = providers.ErrLeaseLost
	// ErrClosed: the client, publisher or consumer is closed.
	ErrClosed = providers.ErrClosed
	// ErrUnavailable: the provider could not be reached or throttled the
	// call; trying again later may succeed.
	ErrUnavailable = providers.ErrUnavailable
)

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that retrying cannot fix (a message that can
// never be valid, say). A handler returning it has its message
// dead-lettered at once with reason "permanent" instead of retried.
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
