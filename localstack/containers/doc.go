// Package containers starts the Docker-based local clouds: the real
// emulators that the no-Docker stand-ins of package localstack imitate.
//
//	function                  container(s)                            gives
//	StartLocalStack           LocalStack, services sns,sqs            Endpoint, Region, URL
//	StartPubSubEmulator       Google's Pub/Sub emulator (gcloud SDK)  Host, Project, URL
//	StartServiceBusEmulator   Microsoft's Service Bus emulator and    ConnectionString, URL
//	                          the SQL Server it keeps its state in
//
// Everything here goes through testcontainers-go v0.45.0, which talks to
// the Docker engine that DOCKER_HOST (or the default socket) names. It
// lives in its own package so that only code importing it links the
// Docker client: herald itself and package localstack do not.
//
// Every Start function first asks DockerAvailable, which gives up after
// 5 s, so that with no engine (or one that does not answer) a Start
// returns an error wrapping providers.ErrUnavailable within about 5 s
// instead of hanging or panicking (testcontainers panics in some of its
// calls when no engine is found). A Start with a context that has no
// deadline gives the containers 10 minutes to be pulled and to become
// ready. Close removes the containers; testcontainers' reaper (Ryuk)
// removes them too when the process dies first.
//
// Variables:
//
//   - HERALD_DOCKER=1 lets this package's tests start containers; without
//     it they skip, as they do when no Docker engine answers. They never
//     fail for a missing engine: HERALD_REQUIRE_ALL=1 does not apply here.
//   - LOCALSTACK_AUTH_TOKEN is passed to the LocalStack container when
//     set. Current LocalStack images refuse to start without it.
//   - HERALD_LOCALSTACK_IMAGE, HERALD_PUBSUB_IMAGE,
//     HERALD_SERVICEBUS_IMAGE and HERALD_MSSQL_IMAGE replace the default
//     images (the Default*Image constants).
//
// None of the container paths has been run in herald's CI, which has no
// Docker engine; CI runs only the tests that prove the no-Docker path
// (an error within seconds, no panic, no hang). Treat the container
// paths as written against testcontainers-go's sources, not as tested.
package containers
