// Package localstack starts local stand-ins for the three clouds, so that
// tests and development exercise the real client libraries over real
// sockets with no cloud account:
//
//	cloud    without Docker                        with Docker
//	AWS      fauxqs (pinned npm package, Node 20)  LocalStack
//	Google   pstest, served on a loopback port     Google's Pub/Sub emulator
//	Azure    herald's Service Bus emulator         Microsoft's emulator
//
// Each starter first honours the cloud's standard variable (AWS_ENDPOINT_URL,
// PUBSUB_EMULATOR_HOST, HERALD_SERVICEBUS_CONNECTION_STRING), so that the
// same tests run against a cloud someone already started.
//
// A test whose local cloud cannot start calls Unavailable, which skips it
// with the reason, or fails it when HERALD_REQUIRE_ALL=1 (as CI sets), so
// that a missing cloud can never pass as a green run.
package localstack

import (
	"os"
	"testing"
)

// EnvRequireAll names the variable that turns skips for a missing local
// cloud into failures.
const EnvRequireAll = "HERALD_REQUIRE_ALL"

// RequireAll reports whether HERALD_REQUIRE_ALL=1 is set.
func RequireAll() bool { return os.Getenv(EnvRequireAll) == "1" }

// Unavailable ends a test whose local cloud could not start: it skips
// with the reason, or fails under HERALD_REQUIRE_ALL=1.
func Unavailable(t testing.TB, cloud string, err error) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("local %s cloud did not start (%s=1 requires it): %v", cloud, EnvRequireAll, err)
	}
	t.Skipf("local %s cloud did not start: %v (set %s=1 to fail instead)", cloud, err, EnvRequireAll)
}
