package servicebus

import (
	"context"
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/seed06bc8277/herald/providers"
)

// AMQP error conditions Service Bus uses that map onto herald's sentinels.
const (
	condLockLost     = "com.microsoft:message-lock-lost"
	condNotFound     = "amqp:not-found"
	condEntityGone   = "com.microsoft:entity-disabled"
	condServerBusy   = "com.microsoft:server-busy"
	condSizeExceeded = "amqp:link:message-size-exceeded"
	condNotAllowed   = "amqp:not-allowed"
	condUnauthorized = "amqp:unauthorized-access"
)

// wrap turns an error of azservicebus into one that wraps herald's
// sentinel for its cause and names the operation and the entity. The
// client's error stays in the chain for errors.As(*azservicebus.Error).
// Errors of azservicebus name entities and hosts, never keys or tokens.
func wrap(op, entity string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("servicebus: %s %s: %w", op, entity, err)
	}
	return fmt.Errorf("%w: servicebus: %s %s: %w", sentinel(err), op, entity, err)
}

// sentinel picks herald's sentinel for an error of azservicebus.
func sentinel(err error) error {
	if errors.Is(err, azservicebus.ErrMessageTooLarge) {
		return providers.ErrTooLarge
	}
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		switch sbErr.Code {
		case azservicebus.CodeNotFound:
			return providers.ErrNotFound
		case azservicebus.CodeLockLost:
			return providers.ErrLeaseLost
		case azservicebus.CodeClosed:
			return providers.ErrClosed
		case azservicebus.CodeUnauthorizedAccess:
			return providers.ErrInvalid
		}
	}
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) {
		switch amqpErr.Condition {
		case condLockLost:
			return providers.ErrLeaseLost
		case condNotFound, condEntityGone:
			return providers.ErrNotFound
		case condSizeExceeded:
			return providers.ErrTooLarge
		case condNotAllowed, condUnauthorized:
			return providers.ErrInvalid
		case condServerBusy:
			return providers.ErrUnavailable
		}
	}
	return providers.ErrUnavailable
}
