package snssqs

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/seed06bc8277/herald/providers"
)

// The AWS error codes that map to herald's sentinels. SNS speaks the
// query protocol and SQS the JSON protocol, so one condition has several
// spellings.
var (
	notFoundCodes = map[string]bool{
		"NotFound":          true,
		"NotFoundException": true,
		"QueueDoesNotExist": true,
		"AWS.SimpleQueueService.NonExistentQueue": true,
		"NonExistentQueue":                        true,
		"ResourceNotFoundException":               true,
	}
	unavailableCodes = map[string]bool{
		"Throttling":                                true,
		"ThrottlingException":                       true,
		"Throttled":                                 true,
		"ThrottledException":                        true,
		"RequestThrottled":                          true,
		"RequestThrottledException":                 true,
		"TooManyRequestsException":                  true,
		"RequestLimitExceeded":                      true,
		"KMSThrottling":                             true,
		"KMSThrottlingException":                    true,
		"ServiceUnavailable":                        true,
		"InternalError":                             true,
		"InternalFailure":                           true,
		"AWS.SimpleQueueService.ServiceUnavailable": true,
	}
	leaseLostCodes = map[string]bool{
		"ReceiptHandleIsInvalid":                        true,
		"MessageNotInflight":                            true,
		"AWS.SimpleQueueService.MessageNotInflight":     true,
		"InvalidReceiptHandle":                          true,
		"AWS.SimpleQueueService.ReceiptHandleIsInvalid": true,
	}
)

// sentinel returns herald's sentinel for an AWS error code, or nil.
func sentinel(code string, status int) error {
	switch {
	case notFoundCodes[code]:
		return providers.ErrNotFound
	case unavailableCodes[code]:
		return providers.ErrUnavailable
	case leaseLostCodes[code]:
		return providers.ErrLeaseLost
	case status >= 500:
		return providers.ErrUnavailable
	case status >= 400 || code != "":
		return providers.ErrInvalid
	}
	return nil
}

// wrap turns an SDK error into herald's: "snssqs: OP RESOURCE: SENTINEL:
// cause", keeping the SDK error reachable with errors.As. A context's end
// stays itself; a failure without an AWS answer (connection refused, a
// timeout, retries used up) is ErrUnavailable.
func wrap(op, resource string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("snssqs: %s %s: %w", op, resource, err)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		status := 0
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			status = re.HTTPStatusCode()
		}
		if s := sentinel(ae.ErrorCode(), status); s != nil {
			return fmt.Errorf("snssqs: %s %s: %w: %w", op, resource, s, err)
		}
	}
	return fmt.Errorf("snssqs: %s %s: %w: %w", op, resource, providers.ErrUnavailable, err)
}

// entryError is the error of one failed entry of a batch request.
func entryError(op, resource, code, msg string, senderFault bool) error {
	s := sentinel(code, 0)
	if !senderFault && s == providers.ErrInvalid {
		s = providers.ErrUnavailable // the service's fault: trying again may work
	}
	if s == nil {
		s = providers.ErrUnavailable
	}
	return fmt.Errorf("snssqs: %s %s: %w: %s: %s", op, resource, s, code, msg)
}
