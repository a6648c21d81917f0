// Package bench compares herald with the libraries an application would
// otherwise use: a plain Go channel, gocloud.dev/pubsub and Watermill in
// process, and the raw cloud SDKs, gocloud.dev and herald on local clouds
// (fauxqs for AWS, pstest for Pub/Sub, herald's Service Bus emulator).
//
// It is a module of its own so that herald's module never depends on the
// libraries it is compared with. Everything lives in _test.go files and
// runs with go test -bench; compare.sh runs the contenders interleaved
// over several rounds and prints medians. See README.md.
package bench
