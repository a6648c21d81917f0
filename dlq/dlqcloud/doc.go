// Package dlqcloud runs package dlq against each local cloud (fauxqs for
// AWS, pstest for Pub/Sub, herald's Service Bus emulator): its tests check
// that listing, filtering, redrive and purge behave alike on every
// provider, and BenchmarkRedrive measures a 10,000-letter redrive on each.
// It holds no code besides its tests; it is a package of its own so that
// package dlq's tests need no cloud.
package dlqcloud
